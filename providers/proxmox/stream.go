package proxmox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/phoenixhv/phoenix/reconciler"
)

var _ reconciler.GuestStreamer = (*Client)(nil)

// StreamGuests lists every guest from one /cluster/resources call, handing
// each to yield as its element of the answer's data array comes off the wire:
// the listing is never held whole, and the caller's work on the first guests
// overlaps the transfer and decoding of the rest. An answer that breaks off or
// does not decode ends it with an error after some guests were yielded: the
// caller must take only a nil return as a whole listing. An error of yield
// ends it and is returned as it is.
func (c *Client) StreamGuests(ctx context.Context, yield func(reconciler.GuestSummary) error) error {
	const op = "GET /cluster/resources"
	// A request sent again after a refused ticket (call) was refused before
	// any of its body was read: nothing was yielded twice.
	return c.call(ctx, http.MethodGet, "/cluster/resources", map[string]string{"type": "vm"}, guestStream(op, yield))
}

// guestStream decodes the data of /cluster/resources?type=vm, an array of
// guests, handing each to yield.
func guestStream(op string, yield func(reconciler.GuestSummary) error) dataStream {
	return func(dec *json.Decoder) error {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch tok {
		case nil:
			return nil // data: null, as decoding into a nil slice read it
		case json.Delim('['):
		default:
			return fmt.Errorf("data is %v, not an array", tok)
		}
		for dec.More() {
			var r guestEntry
			if err := dec.Decode(&r); err != nil {
				return err
			}
			g, err := r.summary(op)
			if err != nil {
				return passThrough{err}
			}
			if err := yield(g); err != nil {
				return passThrough{err}
			}
		}
		_, err = dec.Token() // the closing ]
		return err
	}
}

// guestEntry is one element of /cluster/resources?type=vm, decoded straight
// into its fields (read.go).
type guestEntry struct {
	VMID     jsonScalar `json:"vmid"`
	Type     jsonScalar `json:"type"`
	Node     jsonScalar `json:"node"`
	Name     jsonScalar `json:"name"`
	Status   jsonScalar `json:"status"`
	Template jsonScalar `json:"template"`
	Lock     jsonScalar `json:"lock"`
	Tags     jsonScalar `json:"tags"`
}

func (r *guestEntry) summary(op string) (reconciler.GuestSummary, error) {
	vmid, err := r.VMID.integer()
	if err != nil {
		return reconciler.GuestSummary{}, errUnexpected(op, "vmid", r.VMID.any())
	}
	g := reconciler.GuestSummary{
		VMID: vmid, Type: intern(r.Type.value()), Node: intern(r.Node.value()), Name: r.Name.value(),
		Status: intern(r.Status.value()), Template: r.Template.value() == "1", Lock: intern(r.Lock.value()),
	}
	for t := range strings.FieldsFuncSeq(r.Tags.value(), func(r rune) bool { return r == ';' || r == ',' || r == ' ' }) {
		g.Tags = append(g.Tags, internShort(t))
	}
	return g, nil
}

// dataStream, given to get as out, is handed the decoder at the answer's data
// value and decodes it itself, element by element.
type dataStream func(dec *json.Decoder) error

// passThrough is an error of a dataStream that is not the answer's fault (an
// error of its consumer, or an answer that decoded but said something phoenix
// refuses): get and call return it as it is, not as an undecodable answer.
type passThrough struct{ err error }

func (p passThrough) Error() string { return p.err.Error() }
func (p passThrough) Unwrap() error { return p.err }

// decodeStream walks the answer's top object to its data key (matched as
// encoding/json matches a field name: case aside) and hands the decoder there
// to stream. Like decoding into struct{Data any}, it skips
// other keys and takes an answer without data, or a null one, as no data; a
// second data key is refused.
func decodeStream(dec *json.Decoder, stream dataStream) error {
	tok, err := dec.Token()
	if err != nil || tok == nil {
		return err
	}
	if tok != json.Delim('{') {
		return fmt.Errorf("the answer is %v, not an object", tok)
	}
	seen := false
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		if key, _ := tok.(string); !strings.EqualFold(key, "data") {
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return err
			}
			continue
		}
		if seen {
			return errors.New("the answer holds data twice")
		}
		seen = true
		if err := stream(dec); err != nil {
			return err
		}
	}
	_, err = dec.Token() // the closing }
	return err
}

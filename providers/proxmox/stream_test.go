package proxmox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/phoenixhv/phoenix/reconciler"
	"github.com/phoenixhv/phoenix/spec"
)

// listingClient is a client of a server that answers /cluster/resources with
// listing(w) and configs with a small config, counting them.
func listingClient(t *testing.T, listing func(w http.ResponseWriter), config func(vmid string)) *Client {
	t.Helper()
	ca := newTestCA(t)
	addr := httpsServer(t, ca.leaf(t, "127.0.0.1"), func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json;charset=UTF-8")
		switch {
		case r.URL.Path == "/api2/json/version":
			fmt.Fprint(w, `{"data":{"version":"9.1.1"}}`)
		case r.URL.Path == "/api2/json/cluster/resources":
			listing(w)
		case strings.HasSuffix(r.URL.Path, "/config"):
			vmid := strings.Split(r.URL.Path, "/")[6]
			if config != nil {
				config(vmid)
			}
			fmt.Fprintf(w, `{"data":{"digest":"d%s","hostname":"ct%s","cores":1}}`, vmid, vmid)
		default:
			http.NotFound(w, r)
		}
	})
	cfg := testConfig(t, addr)
	cfg.CAFile = ca.file
	c, err := New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestStreamGuests: the listing is handed out element by element with the
// strictness Guests had, and an answer that breaks off is an error after the
// guests before it, never a shorter listing taken as whole.
func TestStreamGuests(t *testing.T) {
	var body atomic.Value
	c := listingClient(t, func(w http.ResponseWriter) { fmt.Fprint(w, body.Load().(string)) }, nil)
	errStop := errors.New("stop")
	for _, tc := range []struct {
		name, body string
		yield      error    // what yield returns
		yielded    []int    // the VMIDs handed out
		err        string   // a prefix of the error, "" for none
		retry      bool     // whether the error is worth retrying
		guests     []string // Guests' answer, as VMID:type:node:name:status:template:lock:tags
	}{
		{name: "whole", body: `{"data":[{"vmid":100,"type":"lxc","node":"pve1","name":"a","status":"running","tags":"phoenix;x,y z"},` +
			`{"vmid":"101","template":1,"lock":"backup","extra":{"x":[1]}}],"other":[1,{"a":2}]}`,
			yielded: []int{100, 101}, guests: []string{"100:lxc:pve1:a:running:false::phoenix,x,y,z", "101:::::true:backup:"}},
		{name: "null data", body: `{"data":null}`, guests: []string{}},
		{name: "no data", body: `{"success":1}`, guests: []string{}},
		{name: "case", body: `{"Data":[{"vmid":7}]}`, yielded: []int{7}, guests: []string{"7:::::false::"}},
		{name: "bad vmid", body: `{"data":[{"vmid":1},{"vmid":"x"},{"vmid":3}]}`, yielded: []int{1},
			err: "GET /cluster/resources: unexpected vmid in the answer: x"},
		{name: "null element", body: `{"data":[{"vmid":1},null]}`, yielded: []int{1},
			err: "GET /cluster/resources: unexpected vmid in the answer: <nil>"},
		{name: "bad element", body: `{"data":[{"vmid":1},5]}`, yielded: []int{1},
			err: `GET /cluster/resources: unexpected answer {"data":[{"vmid":1},5]}: json: cannot unmarshal number`},
		{name: "truncated", body: `{"data":[{"vmid":1},{"vmid":2},{"vm`, yielded: []int{1, 2},
			err: `GET /cluster/resources: unexpected answer {"data":[{"vmid":1},{"vmid":2},{"vm: unexpected EOF`},
		{name: "unclosed", body: `{"data":[{"vmid":1}`, yielded: []int{1}, err: `GET /cluster/resources: unexpected answer`},
		{name: "not an array", body: `{"data":{"vmid":1}}`, err: `GET /cluster/resources: unexpected answer {"data":{"vmid":1}}: data is {, not an array`},
		{name: "twice", body: `{"data":[{"vmid":1}],"data":[{"vmid":2}]}`, yielded: []int{1}, err: `GET /cluster/resources: unexpected answer`},
		{name: "yield fails", body: `{"data":[{"vmid":1},{"vmid":2}]}`, yield: errStop, yielded: []int{1}, err: "stop"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body.Store(tc.body)
			var yielded []int
			err := c.StreamGuests(context.Background(), func(g reconciler.GuestSummary) error {
				yielded = append(yielded, g.VMID)
				return tc.yield
			})
			if !slices.Equal(yielded, tc.yielded) {
				t.Errorf("yielded %v, want %v", yielded, tc.yielded)
			}
			checkErr(t, err, tc.err, tc.retry)
			if tc.yield != nil {
				if err != tc.yield {
					t.Errorf("yield's error came back as %#v", err)
				}
				return
			}
			guests, err := c.Guests(context.Background())
			checkErr(t, err, tc.err, tc.retry)
			if (guests == nil) != (tc.guests == nil) {
				t.Errorf("Guests = %#v, want %v", guests, tc.guests)
			}
			var got []string
			for _, g := range guests {
				got = append(got, fmt.Sprintf("%d:%s:%s:%s:%s:%t:%s:%s", g.VMID, g.Type, g.Node, g.Name, g.Status, g.Template, g.Lock, strings.Join(g.Tags, ",")))
			}
			if len(got) > 0 && !reflect.DeepEqual(got, tc.guests) {
				t.Errorf("Guests = %q, want %q", got, tc.guests)
			}
		})
	}
}

func checkErr(t *testing.T, err error, want string, retry bool) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("err = %v", err)
	case want != "" && (err == nil || !strings.HasPrefix(err.Error(), want)):
		t.Errorf("err = %v, want %s...", err, want)
	case err != nil && reconciler.Retryable(err) != retry:
		t.Errorf("err = %v: retryable %t, want %t", err, reconciler.Retryable(err), retry)
	}
}

// TestStreamGuestsConnectionBreaks: a connection that breaks off mid-listing
// is a transport failure, worth another try, not an answer that said
// something wrong.
func TestStreamGuestsConnectionBreaks(t *testing.T) {
	c := listingClient(t, func(w http.ResponseWriter) {
		part := `{"data":[{"vmid":1},{"vmid":2},`
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nContent-Type: application/json;charset=UTF-8\r\nContent-Length: %d\r\n\r\n%s", len(part)+100, part)
		_ = buf.Flush()
		_ = conn.Close()
	}, nil)
	var yielded []int
	err := c.StreamGuests(context.Background(), func(g reconciler.GuestSummary) error {
		yielded = append(yielded, g.VMID)
		return nil
	})
	if err == nil || !reconciler.Retryable(err) || !strings.HasPrefix(err.Error(), "GET /cluster/resources: ") {
		t.Errorf("err = %v, want a retryable failure of GET /cluster/resources", err)
	}
	if !slices.Equal(yielded, []int{1, 2}) {
		t.Errorf("yielded %v before the break, want [1 2]", yielded)
	}
	if guests, err := c.Guests(context.Background()); guests != nil || err == nil {
		t.Errorf("Guests = %v, %v: a broken listing taken as whole", guests, err)
	}
}

// TestObserveReadsWhileListing: Observe reads a guest's config before the
// listing has ended. The server sends half the listing, then waits for a
// config request before it sends the rest; reads that start only once the
// listing has ended come after the wait's timeout, and fail the test.
func TestObserveReadsWhileListing(t *testing.T) {
	const n = 200
	elem := func(i int) string {
		return fmt.Sprintf(`{"vmid":%d,"type":"lxc","node":"pve1","name":"ct%d","status":"stopped","tags":"%s"}`, 1000+i, i, reconciler.ManagedTag)
	}
	var once sync.Once
	configSeen := make(chan struct{})
	var beforeEnd atomic.Bool
	var reads atomic.Int32
	c := listingClient(t, func(w http.ResponseWriter) {
		var half, rest []string
		for i := range n {
			if i < n/2 {
				half = append(half, elem(i))
			} else {
				rest = append(rest, elem(i))
			}
		}
		fmt.Fprint(w, `{"data":[`+strings.Join(half, ",")+",")
		_ = http.NewResponseController(w).Flush()
		select {
		case <-configSeen:
			beforeEnd.Store(true)
		case <-time.After(3 * time.Second):
		}
		fmt.Fprint(w, strings.Join(rest, ",")+`]}`)
	}, func(string) {
		reads.Add(1)
		once.Do(func() { close(configSeen) })
	})
	obs, err := reconciler.Observe(context.Background(), c, nil, &spec.Resolution{}, reconciler.ObserveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !beforeEnd.Load() {
		t.Error("no config was read before the listing ended")
	}
	if len(obs.Guests) != n || reads.Load() != n {
		t.Fatalf("observed %d guests with %d config reads, want %d", len(obs.Guests), reads.Load(), n)
	}
	for vmid, g := range obs.Guests {
		if g.ConfigErr != nil || g.Config.Values["hostname"] != fmt.Sprint("ct", vmid) || !g.Managed {
			t.Fatalf("%d: %+v", vmid, g)
		}
	}
}

// FuzzGuestStream holds the streaming decoder to decoding the whole answer
// at once, as Guests did before it streamed: what it accepts, the whole
// decoding accepts with the same guests, and what that refuses, it refuses.
func FuzzGuestStream(f *testing.F) {
	for _, s := range []string{
		`{"data":[{"vmid":100,"type":"lxc","node":"pve1","name":"a","status":"running","tags":"phoenix;x"},{"vmid":"101","template":1}]}`,
		`{"data":null}`, `{}`, `null`, `[]`, `{"data":[{"vmid":1},5]}`, `{"data":[{"vmid":1},{"vm`, `{"Data":[{"vmid":1.0}]}`,
		`{"x":{"y":[1,2]},"data":[{"vmid":"1e2","lock":null,"tags":["a"]}],"z":"q"}`, `{"data":[{"vmid":1}]} trailing`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var streamed []reconciler.GuestSummary
		dec := json.NewDecoder(bytes.NewReader(in))
		dec.UseNumber()
		serr := decodeStream(dec, guestStream("op", func(g reconciler.GuestSummary) error {
			streamed = append(streamed, g)
			return nil
		}))
		whole, werr := decodeWhole(in)
		switch {
		case serr == nil && werr != nil:
			t.Fatalf("streaming accepts what decoding whole refuses (%v)", werr)
		case werr == nil && serr != nil && !bytes.Contains(bytes.ToLower(in), []byte(`"data"`)):
			t.Fatalf("streaming refuses what decoding whole accepts: %v", serr)
		case serr == nil && !reflect.DeepEqual(streamed, whole):
			t.Fatalf("streamed %+v, whole %+v", streamed, whole)
		}
	})
}

// decodeWhole is Guests as it was before it streamed: the answer decoded
// whole, then each entry read.
func decodeWhole(in []byte) ([]reconciler.GuestSummary, error) {
	var raw []guestEntry
	dec := json.NewDecoder(bytes.NewReader(in))
	dec.UseNumber()
	if err := dec.Decode(&struct {
		Data any `json:"data"`
	}{&raw}); err != nil {
		return nil, err
	}
	var out []reconciler.GuestSummary
	for _, r := range raw {
		g, err := r.summary("op")
		if err != nil {
			return nil, err
		}
		out = append(out, g)
	}
	return out, nil
}

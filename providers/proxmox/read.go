package proxmox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"unique"
)

// get makes a GET and decodes the answer's data into out as it comes off the
// wire, in one pass. go-proxmox's Get reads the whole body, decodes it once
// to find its data key and once more into a json.RawMessage, which call then
// decoded a third time; a no-op pass makes one or two reads per guest, so
// those passes were most of its work and garbage. The request is the one
// go-proxmox makes (its headers, the same HTTP client, so capturingTransport
// still keeps a failed answer for call to classify). Proxmox's JSON formatter
// always wraps the result in {"data": ...} (pve-http-server
// src/PVE/APIServer/Formatter/Standard.pm); an answer without a data key
// leaves out as it was.
func (c *Client) get(ctx context.Context, target string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.cfg.Endpoint+target, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "phoenix")
	req.Header.Set("Accept", "application/json")
	if c.cfg.TokenID != "" {
		req.Header.Set("Authorization", "PVEAPIToken="+c.cfg.TokenID+"="+c.cfg.TokenSecret)
	} else if err := signRequest(req); err != nil {
		return err
	}
	res, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = res.Body.Close() }()
	if res.StatusCode >= 400 {
		// capturingTransport has kept the answer: call classifies it.
		return errors.New(res.Status)
	}
	if out == nil {
		_, err := io.Copy(io.Discard, res.Body)
		return err
	}
	head := &headBuffer{}
	body := &bodyReader{r: res.Body}
	dec := json.NewDecoder(io.TeeReader(body, head))
	dec.UseNumber()
	if stream, ok := out.(dataStream); ok {
		err = decodeStream(dec, stream) // stream.go
	} else {
		// Decoding into an interface that holds a pointer decodes into
		// what the pointer points at: out itself, not a copy.
		err = dec.Decode(&struct {
			Data any `json:"data"`
		}{out})
	}
	var pass passThrough
	switch {
	case err == nil:
		return nil
	case errors.As(err, &pass):
		return pass
	case body.err != nil:
		// The connection broke off or timed out mid-answer: a
		// transport failure, which call classifies (and the reconciler
		// retries), not an answer that said something wrong.
		return body.err
	}
	return &answerError{head: head.Bytes(), err: err}
}

// bodyReader keeps the first error reading an answer's body met, end of
// body aside.
type bodyReader struct {
	r   io.Reader
	err error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF && b.err == nil {
		b.err = err
	}
	return n, err
}

// answerError is an answer that came but did not decode: not a transport
// failure, so call reports it as it is.
type answerError struct {
	head []byte
	err  error
}

func (e *answerError) Error() string {
	return fmt.Sprintf("unexpected answer %.200s: %v", e.head, e.err)
}
func (e *answerError) Unwrap() error { return e.err }

// headBuffer keeps the first 200 bytes written to it: enough of an answer to
// say what it was.
type headBuffer struct{ bytes.Buffer }

func (h *headBuffer) Write(p []byte) (int, error) {
	if room := 200 - h.Len(); room > 0 {
		h.Buffer.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

// jsonScalar decodes a JSON value as scalar reads it (numbers as their text,
// booleans as 1 and 0, null as ""), without boxing it in an interface first.
// It is small (a listing or pending list holds thousands): an array or object
// (GuestConfig's lxc lines, or an answer of the wrong shape) is kept as its
// JSON text in s.
type jsonScalar struct {
	s    string
	kind byte
}

// The kinds of jsonScalar: absent tells a value that was not there from one
// that was, null included.
const (
	scalarAbsent byte = iota
	scalarText
	scalarNull
	scalarRaw
)

func (j *jsonScalar) UnmarshalJSON(b []byte) error {
	j.kind = scalarText
	switch {
	case len(b) == 0:
		return nil
	case b[0] == '"':
		if bytes.IndexByte(b, '\\') < 0 {
			j.s = string(b[1 : len(b)-1])
			return nil
		}
		return json.Unmarshal(b, &j.s)
	case b[0] == 'n':
		j.s, j.kind = "", scalarNull
	case b[0] == 't':
		j.s = "1"
	case b[0] == 'f':
		j.s = "0"
	case b[0] == '[' || b[0] == '{':
		j.s, j.kind = string(b), scalarRaw
	default:
		j.s = string(b) // a number, as json.Number keeps it
	}
	return nil
}

// set reports whether the value was present, null included.
func (j jsonScalar) set() bool { return j.kind != scalarAbsent }

// object reports whether the value is a JSON object.
func (j jsonScalar) object() bool { return j.kind == scalarRaw && j.s[0] == '{' }

// value is the value as scalar gives it; an array or object decodes as
// call would have decoded it and is written back as scalar writes it.
func (j jsonScalar) value() string {
	if j.kind != scalarRaw {
		return j.s
	}
	return scalar(j.any())
}

// any is the value as call would have decoded it (json.Number for numbers).
func (j jsonScalar) any() any {
	switch j.kind {
	case scalarAbsent, scalarNull:
		return nil
	case scalarText:
		return j.s
	}
	dec := json.NewDecoder(strings.NewReader(j.s))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil {
		return j.s
	}
	return v
}

// integer is the value as an integer, as integer reads it.
func (j jsonScalar) integer() (int, error) {
	if n, err := strconv.Atoi(j.s); err == nil && j.kind == scalarText {
		return n, nil
	}
	return integer(j.any())
}

// intern returns s as a copy shared by every value of the same text still in
// use: a pass over thousands of guests reads the same config keys and
// statuses, node names and most option values ("cores", "running", "512")
// thousands of times.
func intern(s string) string { return unique.Make(s).Value() }

// internShort interns s when it is short enough to be a value many guests
// share; a long one (a root disk, a description) is each guest's own.
func internShort(s string) string {
	if len(s) > 32 {
		return s
	}
	return intern(s)
}

package proxmox

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/phoenixhv/phoenix/reconciler"
)

// TestJSONScalarAsScalar holds the one-pass decoding to what call's decoding
// into interfaces (json.Number for numbers) and scalar made of each value.
func TestJSONScalarAsScalar(t *testing.T) {
	for _, in := range []string{
		`"debian"`, `"a \"quoted\" line\nand \u00e9"`, `""`, `512`, `0.5`, `-1`, `1e3`,
		`true`, `false`, `null`, `[1,"a",null]`, `{"b":1,"a":[true]}`, `"1"`,
	} {
		var j jsonScalar
		if err := json.Unmarshal([]byte(in), &j); err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		dec := json.NewDecoder(bytes.NewReader([]byte(in)))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
		if got, want := j.value(), scalar(v); got != want {
			t.Errorf("%s: value %q, scalar %q", in, got, want)
		}
		if !j.set() {
			t.Errorf("%s: not set", in)
		}
		if j.object() != (in[0] == '{') {
			t.Errorf("%s: object() is %t", in, j.object())
		}
		gotInt, gotErr := j.integer()
		wantInt, wantErr := integer(v)
		if gotInt != wantInt || (gotErr == nil) != (wantErr == nil) {
			t.Errorf("%s: integer %d, %v; want %d, %v", in, gotInt, gotErr, wantInt, wantErr)
		}
	}
	var absent struct {
		X jsonScalar `json:"x"`
	}
	if err := json.Unmarshal([]byte(`{}`), &absent); err != nil || absent.X.set() || absent.X.any() != nil {
		t.Errorf("an absent value reads as set (%v)", err)
	}
}

// TestHeadBufferKeepsTheStart: an answer that does not decode is named by
// its first 200 bytes, whatever the writes were cut into.
func TestHeadBufferKeepsTheStart(t *testing.T) {
	h := &headBuffer{}
	for range 30 {
		if n, _ := h.Write([]byte("0123456789")); n != 10 {
			t.Fatalf("write reported %d bytes", n)
		}
	}
	if h.Len() != 200 || h.String()[:10] != "0123456789" {
		t.Errorf("kept %d bytes: %q", h.Len(), h.String())
	}
}

// TestGetDecodesOnce: the reads phoenix decodes itself send what go-proxmox
// sent, read what call read, and report an answer that does not decode as
// such (not as a transport failure worth another try).
func TestGetDecodesOnce(t *testing.T) {
	ca := newTestCA(t)
	headers := make(chan http.Header, 8)
	addr := httpsServer(t, ca.leaf(t, "127.0.0.1"), func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api2/json/version" {
			headers <- r.Header.Clone()
		}
		w.Header().Set("Content-Type", "application/json;charset=UTF-8")
		switch r.URL.Path {
		case "/api2/json/version":
			fmt.Fprint(w, `{"data":{"version":"9.1.1"}}`)
		case "/api2/json/nodes/pve1/lxc/100/config":
			fmt.Fprint(w, `{"data":{"digest":"abc","cores":2,"cpulimit":"0.5","onboot":true,"hostname":"a\"b",`+
				`"description":null,"lxc":[["lxc.cap.drop",""],["lxc.mount.entry","/a b none bind 0 0"]]}}`)
		case "/api2/json/nodes/pve1/lxc/100/pending":
			fmt.Fprint(w, `{"data":[{"key":"cores","value":2,"pending":4},{"key":"swap","value":"512","delete":1},{"key":"memory","value":512}]}`)
		case "/api2/json/cluster/resources":
			fmt.Fprint(w, `{"data":[{"vmid":"100",`)
		}
	})
	cfg := testConfig(t, addr)
	cfg.CAFile = ca.file
	c, err := New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.GuestConfig(context.Background(), "pve1", 100)
	if err != nil {
		t.Fatal(err)
	}
	want := reconciler.Config{Digest: "abc",
		Values: map[string]string{"cores": "2", "cpulimit": "0.5", "onboot": "1", "hostname": `a"b`, "description": ""},
		LXC:    [][2]string{{"lxc.cap.drop", ""}, {"lxc.mount.entry", "/a b none bind 0 0"}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("config %+v, want %+v", got, want)
	}
	h := <-headers
	if h.Get("User-Agent") != "phoenix" || h.Get("Accept") != "application/json" || h.Get("Authorization") != "PVEAPIToken="+testTokenID+"="+testSecret {
		t.Errorf("headers %v", h)
	}
	pending, err := c.Pending(context.Background(), "pve1", 100)
	if err != nil {
		t.Fatal(err)
	}
	wantPending := []reconciler.PendingOption{{Key: "cores", Value: "2", Pending: "4", HasPending: true},
		{Key: "swap", Value: "512", Delete: true}, {Key: "memory", Value: "512"}}
	if !reflect.DeepEqual(pending, wantPending) {
		t.Errorf("pending %+v, want %+v", pending, wantPending)
	}
	_, err = c.Guests(context.Background())
	if err == nil || !strings.HasPrefix(err.Error(), `GET /cluster/resources: unexpected answer {"data":[{"vmid":"100",: `) || reconciler.Retryable(err) {
		t.Errorf("err = %v, want an unexpected answer that is not retried", err)
	}
}

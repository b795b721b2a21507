package pveapi

import (
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"
)

// fuzzProperties are the property strings phoenix sends, plus two named hash formats.
func fuzzProperties(t testing.TB, s *Schema) []*Property {
	t.Helper()
	create, _, err := s.Lookup("POST", "/nodes/pve1/lxc")
	if err != nil {
		t.Fatal(err)
	}
	backup, _, err := s.Lookup("POST", "/cluster/backup")
	if err != nil {
		t.Fatal(err)
	}
	var out []*Property
	for _, n := range []string{"net0", "dev0", "rootfs", "features", "mp0", "unused0"} {
		p, _ := create.Property(n)
		out = append(out, p)
	}
	for _, n := range []string{"prune-backups", "fleecing", "performance"} {
		p, _ := backup.Property(n)
		out = append(out, p)
	}
	return out
}

func FuzzParsePropertyString(f *testing.F) {
	for i, v := range []string{
		"name=eth0,bridge=vmbr0,ip=dhcp", "/dev/nvidia0,gid=44", "local-lvm:8,size=8G",
		"nesting=1,keyctl=1", "local-lvm:4,mp=/data", "local-lvm:vm-101-disk-1",
		"keep-last=3", "1,storage=local", "max-workers=8",
	} {
		f.Add(uint8(i), v)
	}
	f.Add(uint8(0), "name=eth0,name=eth1")
	f.Add(uint8(2), ",,=,volume=,a=b=c\n")
	s := mustLoad(f, V91)
	props := fuzzProperties(f, s)
	f.Fuzz(func(t *testing.T, which uint8, value string) {
		p := props[int(which)%len(props)]
		res, err := ParsePropertyString(p, value)
		if err != nil {
			var die dieError
			var pse *PropertyStringError
			if !errors.As(err, &die) && !errors.As(err, &pse) {
				t.Fatalf("error %T %q is neither a die message nor a format error", err, err)
			}
			if !strings.HasSuffix(err.Error(), "\n") {
				t.Fatalf("error %q lacks the trailing newline of a Perl die", err)
			}
			return
		}
		keys := p.PropertyString
		if keys == nil {
			named, _ := s.formats.get(p.Format)
			keys = named.hash
		}
		for k := range res {
			if _, ok := keys[k]; !ok {
				t.Fatalf("parsed key %q is not in the format", k)
			}
		}
	})
}

// FuzzVerify drives Lookup, MergeParams and Verify with a request as the simulator sees
// it: an HTTP method, a path and a body that is JSON or www-form-urlencoded.
func FuzzVerify(f *testing.F) {
	f.Add("POST", "/nodes/pve1/lxc", `{"vmid":101,"ostemplate":"local:vztmpl/d.tar.zst","net0":"name=eth0,bridge=vmbr0,ip=dhcp","start":true}`, uint8(0))
	f.Add("POST", "/nodes/pve1/lxc", "vmid=99&ostemplate=x&tags=a%3Bb&features=nesting%3D1", uint8(1))
	f.Add("PUT", "/nodes/pve1/lxc/101/config", `{"delete":["mp0","net1"],"dev0":"/dev/nvidia0,gid=44"}`, uint8(0))
	f.Add("GET", "/nodes/pve1/tasks/UPID:pve1:0000C3A7:0001F43E:65DFB1C5:vzcreate:101:root@pam:/status", "", uint8(0))
	f.Add("POST", "/cluster/notifications/endpoints/sendmail", `{"name":"m","mailto":"root@pam"}`, uint8(1))
	f.Add("POST", "/cluster/ha/rules", `{"rule":"r1","type":"node-affinity","resources":"ct:100","nodes":"pve1:2"}`, uint8(0))
	f.Add("PUT", "/cluster/sdn/fabrics/fabric/f1", `{"protocol":"ospf","delete":["area"],"area":1}`, uint8(0))
	f.Add("DELETE", "/nodes/pve1/storage/local/content/local:vztmpl/x.tar.zst", "", uint8(1))
	f.Add("PATCH", "/", "", uint8(0))
	f.Fuzz(func(t *testing.T, method, path, body string, version uint8) {
		s := mustLoad(t, Versions()[int(version)%len(Versions())])
		m, pathParams, err := s.Lookup(method, path)
		if err != nil {
			var le *LookupError
			if !errors.As(err, &le) || le.StatusCode() != 501 || le.Error() == "" {
				t.Fatalf("Lookup error %T %v", err, err)
			}
			return
		}
		req := map[string]any{}
		dec := json.NewDecoder(strings.NewReader(body))
		dec.UseNumber()
		if err := dec.Decode(&req); err != nil {
			req = map[string]any{}
			form, _ := url.ParseQuery(body)
			for k, vs := range form {
				// Repeated form keys reach PVE NUL-joined.
				req[k] = strings.Join(vs, "\x00")
			}
		}
		params, dup := MergeParams(pathParams, req)
		if dup != nil {
			return
		}
		errs := m.Verify(params)
		for k, msg := range errs {
			if k == "" || msg == "" {
				t.Fatalf("empty key or message in %q", errs)
			}
		}
		if errs != nil && !strings.HasPrefix(errs.Error(), ParamVerificationMessage) {
			t.Fatalf("Error() = %q", errs.Error())
		}
	})
}

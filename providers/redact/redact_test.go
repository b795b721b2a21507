package redact

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

const (
	tokenSecret = "5f1c2a9e-0b7d-4c3e-9a41-7d2be0c4f6a8"
	token       = "root@pam!phoenix=" + tokenSecret
	password    = `pa"ss<wo>rd&\x`
	keyPEM      = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\nQyNTUxOQAAACCe0uTGSEXXkCo3NzKcbhQAuhDHW0rHkE0sVyMKX4iNbwAAAJgAAAAAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
)

func testRedactor() *Redactor {
	return New(
		Secret{Var: "PROXMOX_VE_API_TOKEN", Value: tokenSecret},
		Secret{Var: "PROXMOX_VE_PASSWORD", Value: password},
		Secret{Var: "PROXMOX_VE_SSH_PRIVATE_KEY", Value: keyPEM, Lines: true},
		Secret{Var: "EMPTY", Value: ""},
	)
}

func TestString(t *testing.T) {
	r := testRedactor()
	jsonOf := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	cases := map[string]struct{ in, want string }{
		"a token, its ID kept": {
			in: "token " + token + " and " + tokenSecret, want: "token root@pam!phoenix=[redacted PROXMOX_VE_API_TOKEN] and [redacted PROXMOX_VE_API_TOKEN]"},
		"the ID of a token at the end": {in: "as root@pam!phoenix", want: "as root@pam!phoenix"},
		"a password as it is":          {in: "login " + password + " failed", want: "login [redacted PROXMOX_VE_PASSWORD] failed"},
		"a password in JSON, HTML escaped": {
			in: `{"msg":` + jsonOf("pw "+password) + `}`, want: `{"msg":"pw [redacted PROXMOX_VE_PASSWORD]"}`},
		"a password quoted as slog's text format quotes": {
			in: "msg=" + strconv.Quote("pw "+password), want: `msg="pw [redacted PROXMOX_VE_PASSWORD]"`},
		"a password in a URL": {
			in: "https://root:" + url.QueryEscape(password) + "@pve1:8006/", want: "https://root:[redacted PROXMOX_VE_PASSWORD]@pve1:8006/"},
		"key material as it is": {in: "key: " + keyPEM, want: "key: -----BEGIN OPENSSH PRIVATE KEY-----\n[redacted PROXMOX_VE_SSH_PRIVATE_KEY]\n[redacted PROXMOX_VE_SSH_PRIVATE_KEY]\n-----END OPENSSH PRIVATE KEY-----\n"},
		"key material in JSON": {in: jsonOf(keyPEM),
			want: `"-----BEGIN OPENSSH PRIVATE KEY-----\n[redacted PROXMOX_VE_SSH_PRIVATE_KEY]\n[redacted PROXMOX_VE_SSH_PRIVATE_KEY]\n-----END OPENSSH PRIVATE KEY-----\n"`},
		"a key flattened to one line": {in: strings.ReplaceAll(keyPEM, "\n", `\n`),
			want: `-----BEGIN OPENSSH PRIVATE KEY-----\n[redacted PROXMOX_VE_SSH_PRIVATE_KEY]\n[redacted PROXMOX_VE_SSH_PRIVATE_KEY]\n-----END OPENSSH PRIVATE KEY-----\n`},
		"the armour of a PEM at the end": {in: "see -----BEGIN OPENSSH PRIVATE KEY", want: "see -----BEGIN OPENSSH PRIVATE KEY"},
		"key material re-wrapped, line by line": {
			in:   strings.ReplaceAll(keyPEM, "\n", "\r\n"),
			want: "-----BEGIN OPENSSH PRIVATE KEY-----\r\n[redacted PROXMOX_VE_SSH_PRIVATE_KEY]\r\n[redacted PROXMOX_VE_SSH_PRIVATE_KEY]\r\n-----END OPENSSH PRIVATE KEY-----\r\n"},
		"a line of a key on its own": {
			in: "parse QyNTUxOQAAACCe0uTGSEXXkCo3NzKcbhQAuhDHW0rHkE0sVyMKX4iNbwAAAJgAAAAAAAAA", want: "parse [redacted PROXMOX_VE_SSH_PRIVATE_KEY]"},
		"a secret cut off at the end":               {in: "message: " + tokenSecret[:12], want: "message: [redacted PROXMOX_VE_API_TOKEN]"},
		"too little of a secret at the end to tell": {in: "id 5f1c2", want: "id 5f1c2"},
		"nothing secret":                            {in: "gpu-base has been created", want: "gpu-base has been created"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := r.String(tc.in); got != tc.want {
				t.Errorf("String(%q)\n got %q\nwant %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestShortValuesOnlyAsWords(t *testing.T) {
	r := New(Secret{Var: "PROXMOX_VE_PASSWORD", Value: "pw"}, Secret{Var: "PROXMOX_VE_SSH_PASSWORD", Value: "abcdefgh"})
	if got := r.Short(); len(got) != 1 || got[0] != "PROXMOX_VE_PASSWORD" {
		t.Errorf("Short() = %v", got)
	}
	cases := map[string]string{
		"https://root:pw@pve1":        "https://root:[redacted PROXMOX_VE_PASSWORD]@pve1",
		"password pw":                 "password [redacted PROXMOX_VE_PASSWORD]",
		"pw":                          "[redacted PROXMOX_VE_PASSWORD]",
		"pwned upward pwpw":           "pwned upward pwpw",
		"the clone of pve1 was made":  "the clone of pve1 was made",
		"xabcdefghx (inside a word)":  "x[redacted PROXMOX_VE_SSH_PASSWORD]x (inside a word)",
		`{"password":"pw","k":"pwd"}`: `{"password":"[redacted PROXMOX_VE_PASSWORD]","k":"pwd"}`,
	}
	for in, want := range cases {
		if got := r.String(in); got != want {
			t.Errorf("String(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNothingToRedact(t *testing.T) {
	for _, r := range []*Redactor{nil, New(), New(Secret{Var: "X"})} {
		if got := r.String("abc " + token); got != "abc "+token {
			t.Errorf("%v changed %q", r, got)
		}
		var b bytes.Buffer
		w := r.Writer(&b)
		if _, err := w.Write([]byte("a" + password)); err != nil || w.Flush() != nil || b.String() != "a"+password {
			t.Errorf("writer: %q, %v", b.String(), err)
		}
		err := errors.New("e")
		if r.Error(err) != err {
			t.Error("Error changed an error with nothing to redact")
		}
	}
}

// TestWriterSplitAnywhere writes a text in two pieces, cut at every byte:
// what comes out is what String makes of the whole, wherever the cut falls.
func TestWriterSplitAnywhere(t *testing.T) {
	r := testRedactor()
	short := New(Secret{Var: "P", Value: "pw"})
	texts := []struct {
		r    *Redactor
		text string
	}{
		{r, "token=" + token + "\nsecret " + tokenSecret + " pw " + password + "\n" + keyPEM},
		{r, "ends inside " + tokenSecret[:20]},
		{short, "user:pw@host pwned pw"},
	}
	for _, tc := range texts {
		want := tc.r.String(tc.text)
		for cut := 0; cut <= len(tc.text); cut++ {
			var b bytes.Buffer
			w := tc.r.Writer(&b)
			for _, part := range []string{tc.text[:cut], tc.text[cut:]} {
				if n, err := w.Write([]byte(part)); err != nil || n != len(part) {
					t.Fatalf("Write: %d, %v", n, err)
				}
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			if b.String() != want {
				t.Fatalf("cut at %d:\n got %q\nwant %q", cut, b.String(), want)
			}
		}
	}
}

func TestWriterHoldsBackOnlyWhatCouldBeASecret(t *testing.T) {
	r := testRedactor()
	var b bytes.Buffer
	w := r.Writer(&b)
	_, _ = w.Write([]byte("a plain line\n"))
	if b.String() != "a plain line\n" {
		t.Errorf("held back a plain line: %q", b.String())
	}
	_, _ = w.Write([]byte("then 5f1c"))
	if b.String() != "a plain line\nthen " {
		t.Errorf("the start of a secret passed: %q", b.String())
	}
	_ = w.Flush()
	if b.String() != "a plain line\nthen 5f1c" {
		t.Errorf("after Flush: %q", b.String())
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriterReportsErrors(t *testing.T) {
	w := testRedactor().Writer(failingWriter{})
	if _, err := w.Write([]byte("x\n")); err == nil {
		t.Error("no error")
	}
	if err := w.Flush(); err == nil {
		t.Error("Flush after a failed write: no error")
	}
}

func TestError(t *testing.T) {
	r := testRedactor()
	err := r.Error(fmt.Errorf("login: %w", errors.New("bad password "+password)))
	if err.Error() != "login: bad password [redacted PROXMOX_VE_PASSWORD]" {
		t.Errorf("Error: %v", err)
	}
	if errors.Unwrap(err) != nil {
		t.Error("a redacted error unwraps to the original")
	}
}

func TestFormatShowsNoValue(t *testing.T) {
	r := testRedactor()
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
		out := fmt.Sprintf(verb, r)
		if strings.Contains(out, tokenSecret) || strings.Contains(out, "b3BlbnNzaC1rZXkt") || strings.Contains(out, "wo>rd") {
			t.Errorf("%s shows a secret: %s", verb, out)
		}
	}
}

type hidden struct{ Password string }

func (hidden) String() string { return "hidden{...}" }

func TestHandler(t *testing.T) {
	r := testRedactor()
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			var b bytes.Buffer
			var h slog.Handler = slog.NewTextHandler(&b, nil)
			if format == "json" {
				h = slog.NewJSONHandler(&b, nil)
			}
			log := slog.New(r.Handler(h)).With("token", token).WithGroup("ssh")
			log.Info("connecting with "+tokenSecret,
				"error", fmt.Errorf("key %s refused", keyPEM),
				"password", password,
				slog.Group("nested", "secret", tokenSecret),
				"struct", hidden{Password: password},
				"count", 3)
			out := b.String()
			for _, secret := range []string{tokenSecret, "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW", "wo>rd", `wo\u003erd`} {
				if strings.Contains(out, secret) {
					t.Errorf("the log shows %q:\n%s", secret, out)
				}
			}
			for _, want := range []string{"connecting with [redacted PROXMOX_VE_API_TOKEN]", "[redacted PROXMOX_VE_PASSWORD]", "count=3"} {
				if format == "json" {
					want = strings.Replace(want, "count=3", `"count":3`, 1)
				}
				if !strings.Contains(out, want) {
					t.Errorf("the log lacks %q:\n%s", want, out)
				}
			}
		})
	}
}

// FuzzWriter checks, for any text and any cut, that the writer gives what
// String gives, and that no secret of MinLength or more is left in it.
func FuzzWriter(f *testing.F) {
	f.Add("x "+tokenSecret+" y", "secret-value", uint16(3))
	f.Add(keyPEM, "abcdef", uint16(40))
	f.Add("a pw b", "pw", uint16(2))
	f.Fuzz(func(t *testing.T, text, secret string, cut uint16) {
		if strings.Contains("[redacted S]", secret) || strings.ContainsAny(secret, "\r\n") {
			return // the replacement itself would hold it
		}
		r := New(Secret{Var: "S", Value: secret})
		text = strings.ReplaceAll(text, "@", secret)
		whole := r.String(text)
		if len(secret) >= MinLength && strings.Contains(whole, secret) {
			t.Fatalf("String(%q) = %q still holds %q", text, whole, secret)
		}
		c := int(cut) % (len(text) + 1)
		var b bytes.Buffer
		w := r.Writer(&b)
		_, _ = w.Write([]byte(text[:c]))
		_, _ = w.Write([]byte(text[c:]))
		_ = w.Flush()
		if b.String() != whole {
			t.Fatalf("cut at %d of %q: writer %q, String %q", c, text, b.String(), whole)
		}
	})
}

package nodecmd

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/phoenixhv/phoenix/hack/testtool"
	"github.com/phoenixhv/phoenix/reconciler"
)

func TestParseLease(t *testing.T) {
	since := time.Date(2026, 5, 1, 14, 3, 10, 0, time.UTC)
	who := &reconciler.Holder{Host: "ci-runner-3", PID: 4242, Command: "phoenix apply", Since: since, Specs: "ab12"}
	cases := map[string]struct {
		out  string
		want LeaseAnswer
		bad  bool
	}{
		"acquired, nobody before": {out: "acquired\n", want: LeaseAnswer{Verdict: "acquired"}},
		"held, named": {out: "held\nhost=ci-runner-3\npid=4242\ncommand=phoenix apply\nsince=2026-05-01T14:03:10Z\nspecs=ab12\n",
			want: LeaseAnswer{Verdict: "held", Holder: who}},
		"acquired after a released holder": {out: "acquired\nhost=h\npid=1\ncommand=phoenix run\nsince=2026-05-01T14:03:10Z\nreleased=2026-05-01T14:04:00Z\n",
			want: LeaseAnswer{Verdict: "acquired", Holder: &reconciler.Holder{Host: "h", PID: 1, Command: "phoenix run", Since: since,
				Released: time.Date(2026, 5, 1, 14, 4, 0, 0, time.UTC)}}},
		// A newer phoenix may write more; what is known is read.
		"unknown keys are skipped":   {out: "held\nhost=h\npid=1\ncommand=c\nsince=2026-05-01T14:03:10Z\nnode=pve2\n", want: LeaseAnswer{Verdict: "held", Holder: &reconciler.Holder{Host: "h", PID: 1, Command: "c", Since: since}}},
		"a holder without a pid":     {out: "held\nhost=h\ncommand=c\nsince=2026-05-01T14:03:10Z\n", want: LeaseAnswer{Verdict: "held"}},
		"an equals sign in a value":  {out: "held\nhost=h\npid=1\ncommand=a=b\nsince=2026-05-01T14:03:10Z\n", want: LeaseAnswer{Verdict: "held", Holder: &reconciler.Holder{Host: "h", PID: 1, Command: "a=b", Since: since}}},
		"renewed":                    {out: "renewed\n", want: LeaseAnswer{Verdict: "renewed"}},
		"empty":                      {out: "", bad: true},
		"cut short":                  {out: "held\nhost=h", bad: true},
		"no verdict":                 {out: "host=h\n", bad: true},
		"an unknown verdict":         {out: "taken\n", bad: true},
		"a line that is no key":      {out: "held\ngrep: /etc/pve/priv/phoenix-lease: Input/output error\n", bad: true},
		"a pid that is no number":    {out: "held\nhost=h\npid=x\ncommand=c\nsince=2026-05-01T14:03:10Z\n", bad: true},
		"a time that is no RFC 3339": {out: "held\nhost=h\npid=1\ncommand=c\nsince=14:03\n", bad: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := ParseLease(tc.out)
			if tc.bad {
				if err == nil {
					t.Errorf("accepted %q as %+v", tc.out, got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestLeaseScriptRefusesWhatCannotBeWritten(t *testing.T) {
	h := reconciler.Holder{Host: "h", PID: 1, Command: "phoenix apply", Since: time.Now()}
	for name, c := range map[string]reconciler.LeaseClaim{
		"a token the script would read as a pattern": {Token: "abc.*", Holder: h},
		"a short token":                 {Token: "ab12", Holder: h},
		"a holder on two lines":         {Token: "0123456789abcdef", Holder: reconciler.Holder{Host: "h\npid=1", PID: 1, Command: "c", Since: time.Now()}},
		"a holder without a command":    {Token: "0123456789abcdef", Holder: reconciler.Holder{Host: "h", PID: 1, Since: time.Now()}},
		"a holder without a start time": {Token: "0123456789abcdef", Holder: reconciler.Holder{Host: "h", PID: 1, Command: "c"}},
	} {
		t.Run(name, func(t *testing.T) {
			if s, err := LeaseScript(LeaseTake, c); err == nil {
				t.Errorf("accepted: %v", s.Env)
			}
		})
	}
}

// shellRunner runs argv here with a given shell in place of /bin/sh, the
// cluster file system's paths under root.
func shellRunner(shell, root string) Runner {
	return func(ctx context.Context, argv []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
		argv = slices.Clone(argv)
		if i := slices.Index(argv, "/bin/sh"); i >= 0 {
			argv[i] = shell
		}
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Env = append(os.Environ(), "PHOENIX_PVE_ROOT="+root, "LC_ALL=C")
		cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
		err := cmd.Run()
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return exit.ExitCode(), nil
		}
		if err != nil {
			return -1, err
		}
		return 0, nil
	}
}

// TestLeaseScript runs the real script with real shells on a directory
// standing in for /etc/pve, through the operations phoenix calls: a plain
// file system has no expiry (pmxcfs's, modelled and tested in the
// simulator), but taking, naming the holder, renewing, refusing a
// stranger's token and releasing are the script's own.
func TestLeaseScript(t *testing.T) {
	ctx := context.Background()
	since := time.Date(2026, 5, 1, 14, 3, 10, 0, time.UTC)
	first := reconciler.LeaseClaim{Token: "0123456789abcdef0123456789abcdef",
		Holder: reconciler.Holder{Host: "ci-runner-3", PID: 4242, Command: "phoenix apply", Since: since, Specs: "ab12cd34"}}
	second := reconciler.LeaseClaim{Token: "fedcba9876543210fedcba9876543210",
		Holder: reconciler.Holder{Host: "laptop", PID: 7, Command: "phoenix run", Since: since.Add(time.Minute)}}
	for _, shell := range testtool.Shells(t) {
		t.Run(filepath.Base(shell), func(t *testing.T) {
			root := t.TempDir()
			priv := filepath.Join(root, "etc/pve/priv")
			lock := filepath.Join(priv, "lock/phoenix")
			holderFile := filepath.Join(priv, "phoenix-lease")
			o := Ops{Node: "pve1", Run: shellRunner(shell, root)}

			// Without the cluster file system there is nothing to lock.
			if _, err := o.TakeLease(ctx, first); err == nil || !strings.Contains(err.Error(), "pve cluster filesystem not online") {
				t.Fatalf("take without /etc/pve/priv: %v", err)
			}
			if err := os.MkdirAll(priv, 0o700); err != nil {
				t.Fatal(err)
			}

			prev, err := o.TakeLease(ctx, first)
			if err != nil || prev != nil {
				t.Fatalf("take a free lease: previous %v, %v", prev, err)
			}
			if info, err := os.Stat(lock); err != nil || !info.IsDir() {
				t.Fatalf("no lock directory after take: %v", err)
			}
			file, _ := os.ReadFile(holderFile)
			if want := "token=" + first.Token + "\n" + FormatHolder(first.Holder) + "\n"; string(file) != want {
				t.Errorf("holder file %q, want %q", file, want)
			}

			// A second taker is told who holds it, and never sees the token.
			_, err = o.TakeLease(ctx, second)
			var held *reconciler.LeaseHeldError
			if !errors.As(err, &held) || held.Holder == nil {
				t.Fatalf("take a held lease: %v", err)
			}
			if diff := cmp.Diff(first.Holder, *held.Holder); diff != "" {
				t.Errorf("holder named (-want +got):\n%s", diff)
			}
			if strings.Contains(err.Error(), first.Token) {
				t.Errorf("the token leaked: %v", err)
			}

			// Renewing sets an explicit time: its unlock requests set the
			// mtime to 0, a renewal brings it back to now.
			if err := o.RenewLease(ctx, first); err != nil {
				t.Fatalf("renew: %v", err)
			}
			if info, err := os.Stat(lock); err != nil || time.Since(info.ModTime()) > time.Hour {
				t.Errorf("renewal did not set the lock's time to now: %v %v", info.ModTime(), err)
			}
			var lost *reconciler.LeaseLostError
			if err := o.RenewLease(ctx, second); !errors.As(err, &lost) || lost.Holder == nil || lost.Holder.Host != "ci-runner-3" {
				t.Errorf("renew with a stranger's token: %v", err)
			}
			if err := o.ReleaseLease(ctx, second); !errors.As(err, &lost) {
				t.Errorf("release with a stranger's token: %v", err)
			}
			if _, err := os.Stat(lock); err != nil {
				t.Fatalf("a stranger released the lease: %v", err)
			}

			if err := o.ReleaseLease(ctx, first); err != nil {
				t.Fatalf("release: %v", err)
			}
			if _, err := os.Stat(lock); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("lock still there after release: %v", err)
			}
			if err := o.RenewLease(ctx, first); !errors.As(err, &lost) {
				t.Errorf("renew after release: %v", err)
			}

			// The next holder learns who was there before, and when it left.
			prev, err = o.TakeLease(ctx, second)
			if err != nil || prev == nil || prev.Host != "ci-runner-3" || prev.Specs != "ab12cd34" || prev.Released.IsZero() {
				t.Fatalf("take after a release: previous %+v, %v", prev, err)
			}
			if err := o.ReleaseLease(ctx, second); err != nil {
				t.Fatal(err)
			}

			// Something else where the lock belongs is an error, not a
			// holder.
			if err := os.WriteFile(lock, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := o.TakeLease(ctx, first); err == nil || errors.Is(err, reconciler.ErrLeaseHeld) || !strings.Contains(err.Error(), "File exists") {
				t.Errorf("take with a file in the lock's place: %v", err)
			}
		})
	}
}

func TestLeaseScriptUnknownPhase(t *testing.T) {
	for _, shell := range testtool.Shells(t) {
		cmd := exec.Command(shell, "-c", leaseBody, LeaseName, "steal")
		cmd.Env = append(os.Environ(), "PHOENIX_LEASE_TOKEN=0123456789abcdef", "PHOENIX_PVE_ROOT="+t.TempDir())
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(string(out), "unknown phase 'steal'") {
			t.Errorf("%s: %v %s", shell, err, out)
		}
	}
}

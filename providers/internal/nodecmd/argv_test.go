package nodecmd

import (
	"errors"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/phoenixhv/phoenix/providers/internal/shellwords"
	"github.com/phoenixhv/phoenix/reconciler"
)

func TestExecArgv(t *testing.T) {
	s := reconciler.Script{
		Name: "nvidia-driver/userspace", Phase: "apply", Body: "echo \"$NVIDIA_VERSION\"\n",
		Env: map[string]string{"NVIDIA_VERSION": "580.76.05", "A": "it's $(x)"},
	}
	got, err := ExecArgv(101, s)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"pct", "exec", "101", "--", "env", "A=it's $(x)", "NVIDIA_VERSION=580.76.05",
		"/bin/sh", "-c", "echo \"$NVIDIA_VERSION\"\n", "nvidia-driver/userspace", "apply"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ExecArgv (-want +got):\n%s", diff)
	}
	// What the node's shell makes of the quoted line is the argv itself.
	back, err := shellwords.Split(shellwords.Join(got))
	if err != nil || !cmp.Equal(back, got) {
		t.Errorf("Split(Join(argv)) = %q, %v", back, err)
	}
}

func TestHostArgv(t *testing.T) {
	got, err := HostArgv(HostProbeScript())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"env", "/bin/sh", "-c", hostProbeBody, HostProbeName}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("HostArgv (-want +got):\n%s", diff)
	}
}

func TestPushArgv(t *testing.T) {
	cases := map[string]struct {
		mode os.FileMode
		want string
	}{
		"plain file":  {0o644, "0644"},
		"executable":  {0o755, "0755"},
		"private":     {0o600, "0600"},
		"setuid":      {os.ModeSetuid | 0o755, "4755"},
		"sticky dir":  {os.ModeDir | os.ModeSticky | 0o777, "1777"},
		"setgid only": {os.ModeSetgid | 0o2750&0o777, "2750"},
	}
	for name, tc := range cases {
		got, err := PushArgv(100, "/var/lib/phoenix/NVIDIA.run", "/root/NVIDIA.run", tc.mode)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want := []string{"pct", "push", "100", "/var/lib/phoenix/NVIDIA.run", "/root/NVIDIA.run", "--perms", tc.want}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", name, diff)
		}
	}
}

func TestSetArgv(t *testing.T) {
	got, err := SetArgv(100, map[string]string{"dev1": "/dev/nvidiactl", "dev0": "/dev/nvidia0,mode=0666", "features": "nesting=1,keyctl=1"},
		[]string{"dev3", "dev2", "dev3"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"pct", "set", "100", "--dev0", "/dev/nvidia0,mode=0666", "--dev1", "/dev/nvidiactl",
		"--features", "nesting=1,keyctl=1", "--delete", "dev2,dev3"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("SetArgv (-want +got):\n%s", diff)
	}
	if got, err := SetArgv(100, nil, nil); got != nil || err != nil {
		t.Errorf("SetArgv with nothing to change = %q, %v; want nil, nil", got, err)
	}
}

func TestArgvRefusals(t *testing.T) {
	ok := reconciler.Script{Name: "x/y", Body: "true"}
	cases := map[string]func() ([]string, error){
		"vmid below 100":        func() ([]string, error) { return ExecArgv(99, ok) },
		"vmid above range":      func() ([]string, error) { return ExecArgv(1_000_000_000, ok) },
		"script without name":   func() ([]string, error) { return ExecArgv(100, reconciler.Script{Body: "true"}) },
		"name env would assign": func() ([]string, error) { return HostArgv(reconciler.Script{Name: "A=b", Body: "true"}) },
		"env key not a name": func() ([]string, error) {
			return ExecArgv(100, reconciler.Script{Name: "x", Env: map[string]string{"A B": "1"}})
		},
		"env key with =": func() ([]string, error) {
			return ExecArgv(100, reconciler.Script{Name: "x", Env: map[string]string{"A=B": "1"}})
		},
		"NUL in body": func() ([]string, error) { return ExecArgv(100, reconciler.Script{Name: "x", Body: "a\x00b"}) },
		"NUL in env value": func() ([]string, error) {
			return ExecArgv(100, reconciler.Script{Name: "x", Env: map[string]string{"A": "\x00"}})
		},
		"relative push source": func() ([]string, error) { return PushArgv(100, "NVIDIA.run", "/root/x", 0o644) },
		"relative push target": func() ([]string, error) { return PushArgv(100, "/root/x", "root/x", 0o644) },
		"empty push source":    func() ([]string, error) { return PushArgv(100, "", "/root/x", 0o644) },
		"set and delete a key": func() ([]string, error) {
			return SetArgv(100, map[string]string{"dev0": "/dev/null"}, []string{"dev0"})
		},
		"set delete as a key": func() ([]string, error) { return SetArgv(100, map[string]string{"delete": "dev0"}, nil) },
		"set a raw lxc key":   func() ([]string, error) { return SetArgv(100, map[string]string{"lxc.mount.entry": "x"}, nil) },
		"set an option-like key": func() ([]string, error) {
			return SetArgv(100, map[string]string{"-dev0": "x"}, nil)
		},
		"delete a bad key": func() ([]string, error) { return SetArgv(100, nil, []string{"dev0,dev1"}) },
	}
	for name, f := range cases {
		argv, err := f()
		if err == nil || !errors.Is(err, reconciler.ErrBadRequest) {
			t.Errorf("%s: got %q, %v; want an ErrBadRequest", name, argv, err)
		}
	}
}

package nodecmd

import (
	"context"
	_ "embed"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/phoenixhv/phoenix/reconciler"
)

// LeaseName is the name of the script that takes, renews and releases the
// cluster-wide lease; the simulator models it by this name.
const LeaseName = "phoenix/lease"

// The lease script's phases.
const (
	LeaseTake    = "take"
	LeaseRenew   = "renew"
	LeaseRelease = "release"
)

//go:embed lease.sh
var leaseBody string

// tokenRE is what a claim's token must be: the script matches it as a
// whole line of the holder file.
var tokenRE = regexp.MustCompile(`^[0-9a-f]{16,64}$`)

// LeaseScript is the lease script for one phase of a claim.
func LeaseScript(phase string, c reconciler.LeaseClaim) (reconciler.Script, error) {
	if !tokenRE.MatchString(c.Token) {
		return reconciler.Script{}, fmt.Errorf("lease token %q: want 16 to 64 lower-case hex digits", c.Token)
	}
	env := map[string]string{"PHOENIX_LEASE_TOKEN": c.Token}
	if phase == LeaseTake {
		if err := c.Holder.Check(); err != nil {
			return reconciler.Script{}, err
		}
		env["PHOENIX_LEASE_HOLDER"] = FormatHolder(c.Holder)
	}
	return reconciler.Script{Name: LeaseName, Phase: phase, Body: leaseBody, Env: env}, nil
}

// FormatHolder writes a holder as the lines of the holder file.
func FormatHolder(h reconciler.Holder) string {
	lines := []string{"host=" + h.Host, "pid=" + strconv.Itoa(h.PID), "command=" + h.Command,
		"since=" + h.Since.UTC().Format(time.RFC3339)}
	if h.Specs != "" {
		lines = append(lines, "specs="+h.Specs)
	}
	return strings.Join(lines, "\n")
}

// LeaseAnswer is what the lease script printed: its verdict and the holder
// file's lines (the previous holder after acquired, the current one after
// held and lost). Holder is nil when the file names nobody whole.
type LeaseAnswer struct {
	Verdict string
	Holder  *reconciler.Holder
}

var leaseVerdicts = map[string]bool{"acquired": true, "held": true, "renewed": true, "lost": true, "released": true}

// ParseLease reads what the lease script printed, strictly: a known verdict
// first, then key=value lines. Keys it does not know are skipped (a newer
// phoenix may write more); a holder missing host, pid, command or since is
// none.
func ParseLease(out string) (LeaseAnswer, error) {
	if out == "" || !strings.HasSuffix(out, "\n") {
		return LeaseAnswer{}, fmt.Errorf("lease output %q: cut short", out)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	a := LeaseAnswer{Verdict: lines[0]}
	if !leaseVerdicts[a.Verdict] {
		return LeaseAnswer{}, fmt.Errorf("lease output line 1 %q: not a verdict", lines[0])
	}
	var h reconciler.Holder
	var have int
	for i, l := range lines[1:] {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			return LeaseAnswer{}, fmt.Errorf("lease output line %d %q: want key=value", i+2, l)
		}
		var err error
		switch k {
		case "host":
			h.Host, have = v, have|1
		case "pid":
			h.PID, err = strconv.Atoi(v)
			have |= 2
		case "command":
			h.Command, have = v, have|4
		case "since":
			h.Since, err = time.Parse(time.RFC3339, v)
			have |= 8
		case "specs":
			h.Specs = v
		case "released":
			h.Released, err = time.Parse(time.RFC3339, v)
		}
		if err != nil {
			return LeaseAnswer{}, fmt.Errorf("lease output line %d %q: %w", i+2, l, err)
		}
	}
	if have == 15 {
		a.Holder = &h
	}
	return a, nil
}

// lease runs one phase of the lease script and reads its answer.
func (o Ops) lease(ctx context.Context, phase string, c reconciler.LeaseClaim) (LeaseAnswer, error) {
	s, err := LeaseScript(phase, c)
	if err != nil {
		return LeaseAnswer{}, o.invalid(err)
	}
	argv, err := HostArgv(s)
	if err != nil {
		return LeaseAnswer{}, o.invalid(err)
	}
	res, err := o.do(ctx, OpProbe, argv, nil, nil)
	if err != nil {
		return LeaseAnswer{}, err
	}
	a, err := ParseLease(res.Stdout)
	if err != nil {
		return LeaseAnswer{}, fmt.Errorf("%s: %w", o.Node, err)
	}
	return a, nil
}

func (o Ops) unexpected(phase string, a LeaseAnswer) error {
	return fmt.Errorf("%s: %s %s: answered %q", o.Node, LeaseName, phase, a.Verdict)
}

// TakeLease takes the lease, or says who holds it.
func (o Ops) TakeLease(ctx context.Context, c reconciler.LeaseClaim) (*reconciler.Holder, error) {
	a, err := o.lease(ctx, LeaseTake, c)
	switch {
	case err != nil:
		return nil, err
	case a.Verdict == "acquired":
		return a.Holder, nil
	case a.Verdict == "held":
		// A released holder in the file is the last one: whoever holds the
		// lock now has not written its name yet.
		if a.Holder != nil && !a.Holder.Released.IsZero() {
			a.Holder = nil
		}
		return nil, &reconciler.LeaseHeldError{Holder: a.Holder}
	}
	return nil, o.unexpected(LeaseTake, a)
}

// RenewLease keeps the lease another timeout.
func (o Ops) RenewLease(ctx context.Context, c reconciler.LeaseClaim) error {
	a, err := o.lease(ctx, LeaseRenew, c)
	switch {
	case err != nil:
		return err
	case a.Verdict == "renewed":
		return nil
	case a.Verdict == "lost":
		return lostLease(a, "it expired, or another took it over")
	}
	return o.unexpected(LeaseRenew, a)
}

// ReleaseLease lets the lease go.
func (o Ops) ReleaseLease(ctx context.Context, c reconciler.LeaseClaim) error {
	a, err := o.lease(ctx, LeaseRelease, c)
	switch {
	case err != nil:
		return err
	case a.Verdict == "released":
		return nil
	case a.Verdict == "lost":
		return lostLease(a, "it had expired before its release")
	}
	return o.unexpected(LeaseRelease, a)
}

func lostLease(a LeaseAnswer, reason string) error {
	if a.Holder != nil && !a.Holder.Released.IsZero() {
		a.Holder = nil
	}
	return &reconciler.LeaseLostError{Holder: a.Holder, Reason: reason}
}

package reconciler

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/phoenixhv/phoenix/reconciler/features"
	"github.com/phoenixhv/phoenix/spec"
)

// insideWanted reports whether phoenix keeps files or services in the guest
// its spec puts at vmid: only then is a running guest inspected.
func insideWanted(res *spec.Resolution, vmid int) (files, services []string) {
	r := specAt(res, vmid)
	if r == nil || r.IsTemplate() {
		return nil, nil
	}
	for _, s := range guestServices(res, r) {
		services = append(services, s.Name)
	}
	if r.Stopped {
		services = nil
	}
	return filePaths(res, r), services
}

// observeInside reads what a running, managed container holds of the files
// and services its spec keeps: one phoenix/inspect in the guest.
func observeInside(rd reader, nodes NodeOf, res *spec.Resolution, og *ObservedGuest) {
	if og.Status != "running" || !og.Managed || og.Template || og.Config.Values["template"] == "1" {
		return
	}
	files, services := insideWanted(res, og.VMID)
	if len(files) == 0 && len(services) == 0 {
		return
	}
	og.InsideErr = rd.retry(fmt.Sprintf("inspect the files and services of %d", og.VMID), func() error {
		n, err := nodes(og.Node)
		if err != nil {
			return err
		}
		res, err := n.Exec(rd.ctx, og.VMID, inspectScript(files, services))
		if err != nil {
			return err
		}
		if res.ExitCode != 0 {
			return fmt.Errorf("phoenix/inspect exited %d: %s", res.ExitCode, lastLine(res))
		}
		og.Inside, err = ParseInspect(res.Stdout, files, services)
		return err
	})
}

func inspectScript(files, services []string) Script {
	return Script{Name: "phoenix/inspect", Phase: "check", Body: InspectScript,
		Env: map[string]string{"PHOENIX_FILES": strings.Join(files, " "), "PHOENIX_SERVICES": strings.Join(services, " ")}}
}

// insidePlan is what a guest's files and services need.
type insidePlan struct {
	changes []Change
	// files are the guest's file records once the plan is applied.
	files map[string]string
}

// inside plans a guest's files and services. What a running guest holds was
// read (og.Inside) and is compared; a guest that is not running, or is made
// by this plan, is compared through its records (which a clone has from its
// template). starts says the plan starts the guest; runs that it runs once
// the plan is done, which its services need.
func (p *planner) inside(r *spec.Resolved, og *ObservedGuest, made, runs bool) (insidePlan, []Problem) {
	out := insidePlan{files: map[string]string{}}
	if og.State != nil && og.StateErr == nil {
		maps.Copy(out.files, og.State.Files)
	}
	files, problems := guestFiles(p.res, r, p.opts.Secret)
	if len(problems) > 0 {
		return out, problems
	}
	var services []wantService
	if !r.IsTemplate() && !r.Stopped {
		services = guestServices(p.res, r)
	}
	if len(files) == 0 && len(services) == 0 && len(pendingRestarts(og)) == 0 {
		return out, nil
	}
	var in *Inside
	if !made && og.Status == "running" {
		if og.InsideErr != nil {
			return out, []Problem{problem(ProblemObserve, "reading its files and services failed: %v", og.InsideErr)}
		}
		in = og.Inside
	}
	restarts := map[string]string{}
	for _, pr := range pendingRestarts(og) {
		how, name, _ := strings.Cut(pr, " ")
		restarts[name] = mergeRestart(restarts[name], how)
	}
	for _, f := range files {
		reason := fileReason(f, out.files[f.Path], in)
		out.files[f.Path] = recordDigest(f.Digest)
		if reason == "" {
			continue
		}
		out.changes = append(out.changes, Change{Action: WriteFile, File: f.Path, Digest: f.Digest, Feature: f.Feature, Reason: reason})
		if oc := f.OnChange; oc != nil {
			if oc.Restart != "" {
				restarts[oc.Restart] = mergeRestart(restarts[oc.Restart], "restart")
			} else {
				restarts[oc.Reload] = mergeRestart(restarts[oc.Reload], "reload")
			}
		}
	}
	for _, s := range services {
		c, ok := serviceChange(s, in, restarts[s.Name], runs)
		delete(restarts, s.Name)
		if ok {
			out.changes = append(out.changes, c)
		}
	}
	// A restart asked of a service no feature keeps (a guest's own file
	// naming a unit of its own) is done as asked.
	for _, name := range slices.Sorted(maps.Keys(restarts)) {
		if runs {
			out.changes = append(out.changes, Change{Action: Service, Service: name, Restart: restarts[name],
				Reason: "a file it reads changed"})
		}
	}
	return out, nil
}

// mergeRestart is what two asks of one service come to: a restart covers a
// reload.
func mergeRestart(a, b string) string {
	if a == "restart" || b == "restart" {
		return "restart"
	}
	return cmpOrString(a, b)
}

// pendingRestarts are the restarts a guest's record still asks for.
func pendingRestarts(og *ObservedGuest) []string {
	if og == nil || og.State == nil || og.StateErr != nil {
		return nil
	}
	return og.State.Restarts
}

// fileReason says why a file must be written, or "" when it need not be.
func fileReason(f renderedFile, recorded string, in *Inside) string {
	want := recordDigest(f.Digest)
	if in == nil {
		switch {
		case recorded == "":
			return "not written yet"
		case recorded != want:
			return fmt.Sprintf("content changed: sha256:%s -> sha256:%s", recorded, want)
		}
		return ""
	}
	o := in.Files[f.Path]
	switch {
	case o.Missing:
		if recorded != "" {
			return "removed inside the guest"
		}
		return "missing"
	case o.Digest != f.Digest && recorded == want:
		return fmt.Sprintf("changed inside the guest: sha256:%s, want sha256:%s", recordDigest(o.Digest), want)
	case o.Digest != f.Digest:
		return fmt.Sprintf("content differs: sha256:%s -> sha256:%s", recordDigest(o.Digest), want)
	case o.Mode != f.Mode:
		return fmt.Sprintf("mode %04o -> %04o", o.Mode, f.Mode)
	case !o.ownerMatches(f.User, f.Group):
		return fmt.Sprintf("owner %s -> %s:%s", o.Names, f.User, f.Group)
	}
	return ""
}

// serviceChange plans one service. in is nil where the guest's services
// could not be read (not running now): a service that must run is then
// started once the guest is.
func serviceChange(s wantService, in *Inside, restart string, runs bool) (Change, bool) {
	c := Change{Action: Service, Service: s.Name, Feature: s.Feature, Restart: restart}
	if !runs {
		return c, false
	}
	if in == nil {
		if !s.WantRunning() && restart == "" {
			return c, false
		}
		if restart != "" {
			c.Reason = "a file it reads changed"
		} else {
			c.Reason = "the guest is started: its services are brought up"
		}
		return c, true
	}
	o := in.Services[s.Name]
	var why []string
	switch enabled := o.Enabled == "enabled" || o.Enabled == "enabled-runtime" || o.Enabled == "static" || o.Enabled == "alias"; {
	case o.Active == "no-systemd":
		why = append(why, "the container runs no systemd")
	case o.Enabled == "not-found":
		why = append(why, "not installed")
	case s.WantEnabled() && !enabled:
		why = append(why, o.Enabled+" -> enabled")
	case !s.WantEnabled() && o.Enabled == "enabled":
		why = append(why, "enabled -> disabled")
	}
	switch {
	case s.WantRunning() && o.Active != "active" && o.Enabled != "not-found" && o.Active != "no-systemd":
		why = append(why, o.Active+" -> running")
	case !s.WantRunning() && o.Active == "active":
		why = append(why, "active -> stopped")
	}
	if restart != "" && s.WantRunning() {
		why = append(why, "a file it reads changed")
	}
	if len(why) == 0 {
		return c, false
	}
	c.Reason = strings.Join(why, "; ")
	return c, true
}

// writeFile renders and writes one file, then records it, and the restart
// it asks of a service, in one write of the guest's record.
func (e *engine) writeFile(ctx context.Context, g GuestPlan, r *spec.Resolved, c Change) error {
	files, problems := guestFiles(e.res, r, e.opts.PlanOptions.Secret)
	if len(problems) > 0 {
		return &ProblemError{Problems: problems}
	}
	i := slices.IndexFunc(files, func(f renderedFile) bool { return f.Path == c.File })
	if i < 0 {
		return withKind(ErrorChanged, fmt.Errorf("the spec no longer has file %s: plan and apply again", c.File))
	}
	f := files[i]
	node, err := e.nodes(g.Node)
	if err != nil {
		return err
	}
	if err := e.retry(ctx, g, Event{Action: WriteFile, Feature: f.Feature, Target: f.Path, Step: "pct push"}, func() error {
		return node.WriteFile(ctx, g.VMID, FileWrite{Path: f.Path, Content: f.Content, Mode: f.Mode, User: f.User, Group: f.Group})
	}); err != nil {
		return err
	}
	restart := ""
	if oc := f.OnChange; oc != nil {
		restart = "restart " + oc.Restart
		if oc.Reload != "" {
			restart = "reload " + oc.Reload
		}
	}
	return e.retry(ctx, g, Event{Action: WriteFile, Feature: f.Feature, Target: f.Path, Step: "record"}, func() error {
		return e.updateState(ctx, g, func(s *State) bool {
			if s.Files == nil {
				s.Files = map[string]string{}
			}
			s.Files[f.Path] = recordDigest(f.Digest)
			if restart != "" && !slices.Contains(s.Restarts, restart) {
				s.Restarts = append(s.Restarts, restart)
			}
			return true
		}, ownedState(e.res, r, g.VMID, g.Generation))
	})
}

// serviceTimeout bounds one run of phoenix/service: systemd's own start
// timeout (90 s by default) and the watch after it.
const serviceTimeout = 3 * time.Minute

// service brings a service to its wanted state (tried again a few times:
// a service that fails to start is started again, with backoff), then drops
// the restarts its record asked of it.
func (e *engine) service(ctx context.Context, g GuestPlan, r *spec.Resolved, c Change) error {
	want := spec.Service{Name: c.Service}
	for _, s := range guestServices(e.res, r) {
		if s.Name == c.Service {
			want = s.Service
		}
	}
	node, err := e.nodes(g.Node)
	if err != nil {
		return err
	}
	s := features.Step{Name: "phoenix/service", Body: ServiceScript, NoVerify: true, Timeout: serviceTimeout, Env: map[string]string{
		"SERVICE": c.Service, "ENABLE": strconv.FormatBool(want.WantEnabled()), "RUN": strconv.FormatBool(want.WantRunning()), "RESTART": c.Restart,
	}}
	if err := e.attempts(ctx, g, c, s, "apply", func() (Result, error) { return e.runScript(ctx, g, c, node, s, "apply") }); err != nil {
		return err
	}
	return e.retry(ctx, g, Event{Action: Service, Feature: c.Feature, Target: c.Service, Step: "record"}, func() error {
		return e.updateState(ctx, g, func(s *State) bool {
			n := len(s.Restarts)
			s.Restarts = slices.DeleteFunc(s.Restarts, func(x string) bool {
				_, name, _ := strings.Cut(x, " ")
				return name == c.Service
			})
			if len(s.Restarts) == 0 {
				s.Restarts = nil
			}
			return len(s.Restarts) != n
		}, nil)
	})
}

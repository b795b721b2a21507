package nodecmd

import (
	"context"
	_ "embed"
	"fmt"
	"regexp"
	"strings"

	"github.com/phoenixhv/phoenix/reconciler"
)

// RunfileSourceName is the name of the script that finds a driver's runfile;
// the simulator models it by this name.
const RunfileSourceName = "phoenix/runfile-source"

//go:embed runfile-source.sh
var runfileSourceBody string

var (
	triedLine = regexp.MustCompile(`^tried (https?://\S+) ([0-9]{3})$`)
	foundLine = regexp.MustCompile(`^found (https?://\S+)$`)
)

// FindRunfile asks the node where a driver version's runfile will come from.
func (o Ops) FindRunfile(ctx context.Context, q reconciler.RunfileQuery) (reconciler.RunfileSource, error) {
	for _, u := range q.URLs {
		if strings.ContainsAny(u, " \t\n") {
			return reconciler.RunfileSource{}, o.invalid(fmt.Errorf("runfile URL %q has white space", u))
		}
	}
	s := reconciler.Script{Name: RunfileSourceName, Body: runfileSourceBody,
		Env: map[string]string{"NVIDIA_VERSION": q.Version, "NVIDIA_RUNFILE": q.Path, "NVIDIA_URLS": strings.Join(q.URLs, "\n")}}
	argv, err := HostArgv(s)
	if err != nil {
		return reconciler.RunfileSource{}, o.invalid(err)
	}
	res, err := o.do(ctx, OpProbe, argv, nil, nil)
	if err != nil {
		return reconciler.RunfileSource{}, err
	}
	src, err := ParseRunfileSource(res.Stdout)
	if err != nil {
		return reconciler.RunfileSource{}, fmt.Errorf("%s: %w", o.Node, err)
	}
	return src, nil
}

// ParseRunfileSource reads what the runfile-source script printed, strictly.
func ParseRunfileSource(out string) (reconciler.RunfileSource, error) {
	var src reconciler.RunfileSource
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if out == "" || !strings.HasSuffix(out, "\n") {
		return src, fmt.Errorf("runfile source output %q: cut short", out)
	}
	for i, l := range lines {
		last := i == len(lines)-1
		switch m, f := triedLine.FindStringSubmatch(l), foundLine.FindStringSubmatch(l); {
		case l == "cached" && last && i == 0:
			src.Cached = true
		case m != nil && !last:
			src.Tried = append(src.Tried, reconciler.RunfileTry{URL: m[1], Status: m[2]})
		case f != nil && last:
			src.URL = f[1]
		case l == "none" && last:
		default:
			return reconciler.RunfileSource{}, fmt.Errorf("runfile source output line %d %q: unexpected", i+1, l)
		}
	}
	return src, nil
}

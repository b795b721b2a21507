package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/phoenixhv/phoenix/providers/redact"
	"github.com/phoenixhv/phoenix/reconciler"
	"github.com/phoenixhv/phoenix/spec"
)

func newRunCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "run [-f] PATH... | --git URL [--ref R] [--path DIR] [--interval 60s] [--listen 127.0.0.1:9464] [--once]",
		Short: "Keep the cluster converged: observe, plan and apply in a loop",
		Long: `Observe, plan and apply in a loop. Every pass starts from the cluster as it is.
A change to the spec files starts a pass at once. A guest the plan cannot converge is
shown again each pass and converges once its problem is gone; problems of
observation bring the next pass forward with backoff. A guest whose apply failed
waits with exponential backoff, and one whose failure needs a person (permission,
a refusal) waits for a change to its spec. SIGINT or SIGTERM finish the changes in
flight and exit; a second signal aborts them. --once exits 1 unless every guest
converged, each reason in the log.

Each pass holds the cluster-wide lease (see apply) and lets it go when it ends,
so that a person's apply gets in between passes. A pass that finds the lease held
by another phoenix (after waiting up to --lock-timeout) changes nothing and fails,
naming the holder; a loop that finds another loop on other specs (by the digest of
their contents) wrote last says so in its log: two such loops undo each other.

--prune deletes this deployment's guests that are in no spec only on a full pass
(never on one a change to the spec files started), once the spec files have been
unchanged for --prune-grace, and no more than --prune-max at once: a deploy that
is not atomic never looks like a deployment that lost its guests.

Between and during passes, the guests' health checks run on their intervals
inside every managed, running and converged container; a check that fails its
retries in a row makes the guest not Healthy (and not Ready) and, as its spec
says, is only reported, restarts the container (with backoff: at most once per
five of its intervals, doubling), or has the next pass install the owning
feature again.

With --listen: /metrics (Prometheus), /healthz (fails while a pass has made no
progress for --stall-timeout), /readyz (ready while the last pass ran to its
end), /status (JSON: the last pass and every guest's conditions), / (a status
page: the lineage coloured by condition, each guest's conditions, features and
versions and pending changes, GPUs and drivers per node with mismatches marked,
the last plan, the revision, and the recent events, live through /events). / and
/events need no token on a loopback address; on any other, with
PHOENIX_STATUS_TOKEN set, they want it (Authorization: Bearer TOKEN, or
?token=TOKEN once, which sets a cookie); without it they are open, and the log
warns once.

--alert KIND=URL sends one message when something a person must act on starts
(a guest that cannot converge or failed, a driver mismatch on a node, a pass
that failed, drift corrected) and one when it is resolved, never one per pass;
KIND is webhook, ntfy, gotify, slack or discord.

--git URL reads the specs from a git repository instead of spec paths: phoenix
fetches it (every --git-interval, and at once on a signed POST /hooks/git on
--listen, secret PHOENIX_GIT_WEBHOOK_SECRET), checks each new head out whole
and switches to it atomically, and starts a pass. --ref and --path choose the
branch or tag and the directory; credentials come from PHOENIX_GIT_TOKEN
(https) or PHOENIX_GIT_SSH_KEY with PHOENIX_GIT_KNOWN_HOSTS (ssh). With
--git-verify-ssh or --git-verify-gpg, an unsigned or badly signed head is
refused and shown in /status; the last good revision stays in use. Each
pass logs its revision, /status shows it, and the guests a pass changes
record it.`,
		Args: runArgs,
	}
	specPaths(cmd)
	gitOpts := addGitFlags(cmd)
	interval := cmd.Flags().Duration("interval", 60*time.Second, "time between passes (varied by 10% jitter)")
	listen := cmd.Flags().String("listen", "", "address for /metrics, /healthz, /readyz, /status, the status page / and its /events, e.g. 127.0.0.1:9464")
	once := cmd.Flags().Bool("once", false, "run one pass and exit (for cron and CI)")
	parallelism := cmd.Flags().Int("parallelism", 0, "guests converged at once (default: 8 per online node, at most 32; never more than 8 on one node)")
	allowReplace := cmd.Flags().Bool("allow-replace", false, "destroy and recreate guests whose parent or privilege mode changed")
	prune := cmd.Flags().Bool("prune", false, "delete this deployment's guests that are in no spec, on a full pass once the spec files have been unchanged for --prune-grace")
	pruneMax := pruneMaxFlag(cmd)
	pruneGrace := cmd.Flags().Duration("prune-grace", reconciler.DefaultPruneGrace, "how long the spec files must be unchanged before a pass prunes (0: no wait)")
	stallTimeout := cmd.Flags().Duration("stall-timeout", reconciler.DefaultStallTimeout,
		"how long a pass may go without progress (no step started, ended or printed) before /healthz fails")
	removeRaw := cmd.Flags().Bool("remove-raw-gpu-lines", false, "remove the raw lxc.* lines that pass NVIDIA devices from config files (no API can)")
	lockTimeout := lockTimeoutFlag(cmd)
	alertFlags := cmd.Flags().StringArray("alert", nil, "send alerts to KIND=URL, KIND one of "+strings.Join(alertKinds, ", ")+" (repeatable)")
	alertRate := cmd.Flags().Int("alert-max-per-minute", 10, "alerts sent per minute at most; the rest are folded into one summary")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := checkLockTimeout(*lockTimeout); err != nil {
			return err
		}
		if *pruneMax < 0 || *pruneGrace < 0 {
			return fmt.Errorf("--prune-max and --prune-grace must not be negative")
		}
		if *stallTimeout <= 0 {
			return fmt.Errorf("--stall-timeout %v: want a positive duration such as 35m", *stallTimeout)
		}
		var targets []alertTarget
		for _, f := range *alertFlags {
			t, err := parseAlertFlag(f)
			if err != nil {
				return err
			}
			targets = append(targets, t)
		}
		if *alertRate <= 0 {
			return fmt.Errorf("--alert-max-per-minute %d: want a positive number", *alertRate)
		}
		paths := specFiles(cmd, args)
		log := logger(cmd)
		if len(targets) > 0 {
			// The alert URLs may carry tokens: no log line shows them.
			log = slog.New(redact.New(alertSecrets(targets)...).Handler(log.Handler()))
		}
		// The first signal stops gracefully; the second cancels what runs.
		in := onInterrupt(cmd.Context(), func(s os.Signal) {
			log.Info("stopping after the steps in flight", "signal", s.String())
		}, func() { log.Warn("aborting the steps in flight") })
		defer in.done()
		ctx, stop := in.ctx, in.stop
		gs, err := newGitSource(ctx, cmd, gitOpts, log, os.Getenv)
		if err != nil {
			return err
		}
		if gs != nil {
			paths = gs.paths()
		}

		set, err := loadSpecs(cmd, paths)
		if err != nil {
			return err
		}
		first, err := spec.Resolve(set)
		if err != nil {
			return err
		}
		reg := prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		m := newMetrics(reg)
		gs.register(reg)
		conn, err := connectWith(ctx, first.Cluster, os.Getenv, log, m.transport)
		if err != nil {
			return err
		}
		defer conn.close()
		load := func() (*spec.Resolution, error) {
			res, err := spec.LoadResolved(paths...)
			if err != nil {
				return nil, fmt.Errorf("specs: %w", err)
			}
			return res, nil
		}
		if gs != nil {
			load = gs.load
		}
		var senders alertSenders
		var alerts *reconciler.Alerts
		if len(targets) > 0 {
			// A closure, not the method value: that would copy the empty slice.
			send := func(a reconciler.Alert) { senders.send(a) }
			alerts = reconciler.NewAlerts(reconciler.AlertOptions{Send: send, MaxPerWindow: *alertRate, Revision: gs.shortRevision()})
			am := newAlertMetrics(reg, alerts)
			for _, t := range targets {
				senders = append(senders, newAlertSender(t, log, alertSenderOptions{Count: am.count}))
			}
		}
		defer senders.close()
		page := newStatusPage(nil, os.Getenv(statusTokenEnv))
		health := reconciler.NewHealthRunner(conn.cluster, conn.nodes, reconciler.HealthOptions{Log: log})
		reg.MustRegister(healthCollector{health.Snapshot})
		loop := reconciler.NewLoop(conn.cluster, conn.nodes, load, reconciler.LoopOptions{
			Health:   health,
			Alerts:   alerts,
			Interval: *interval, Log: log, Observe: reconciler.ObserveOptions{Log: log}, StallTimeout: *stallTimeout,
			PruneGrace: noneIfZero(*pruneGrace), SpecsModified: func() (time.Time, error) { return spec.Modified(paths...) }, // the "current" link's with --git
			Apply: reconciler.ApplyOptions{
				PlanOptions: reconciler.PlanOptions{AllowReplace: *allowReplace, Prune: *prune, PruneMax: *pruneMax, RemoveRawGPULines: *removeRaw},
				Parallelism: *parallelism, Durations: reconciler.NewDurations(), Events: func(ev reconciler.Event) { m.event(ev); page.event(ev) }, Redact: redactorOf(ctx).String,
			},
			Lease:    passLease(cmd, conn, paths, *lockTimeout),
			Revision: gs.revision(),
			KeepView: *listen != "", // for the status page
			Pass: func(info reconciler.PassInfo, _ *reconciler.Plan, _ *reconciler.ApplyResult, st []reconciler.GuestStatus) {
				m.pass(info, st)
			},
		})
		page.loop = loop
		if *listen != "" {
			srv, err := serve(*listen, reg, loop, log, redactorOf(ctx), page, gs.routes)
			if err != nil {
				return err
			}
			defer srv.Close()
		}
		if !*once {
			gs.start(ctx, loop.Trigger)
		}
		if !*once && gs == nil {
			w, err := watchSpecs(paths, loop.Trigger, log)
			if err != nil {
				return err
			}
			defer w.Close()
		}
		err = loop.Run(ctx, stop, *once)
		if errors.Is(err, context.Canceled) {
			return &exitError{code: 1, err: errors.New("aborted")}
		}
		if err != nil {
			return err
		}
		if *once {
			// Exit 1 unless every guest converged: the reasons are in the log.
			if r := loop.Report(); r.Pass != nil && !r.Pass.Converged() && r.Pass.Error == "" {
				return &exitError{code: 1, err: fmt.Errorf("not converged: %d guest(s) failed, %d could not be converged (see the log)", r.Pass.Failed, r.Pass.Problems)}
			}
		}
		return nil
	}
	return cmd
}

// noneIfZero maps a flag's 0 (no wait) to the loop's "none", which is
// negative: the loop's zero takes the default.
func noneIfZero(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// serve starts the HTTP endpoints.
func serve(addr string, reg *prometheus.Registry, loop *reconciler.Loop, log *slog.Logger, red *redact.Redactor, page *statusPage, routes ...func(*http.ServeMux)) (*http.Server, error) {
	mux := http.NewServeMux()
	for _, add := range routes {
		add(mux) // POST /hooks/git (gitsource.go)
	}
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if err := loop.Health(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := loop.Readiness(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(loop.Report())
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--listen: %w", err)
	}
	page.listening(mux, ln.Addr(), log) // / and /events (statuspage.go)
	srv := &http.Server{Handler: redactHTTP(red, mux), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	log.Info("serving", "address", ln.Addr().String())
	return srv, nil
}

// watchSpecs triggers a pass when a spec file changes. Directories are
// watched rather than files: git pull and editors replace files by renaming
// over them, which a watch on the old file would miss.
func watchSpecs(paths []string, trigger func(), log *slog.Logger) (*fsnotify.Watcher, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	add := func(dir string) {
		if err := w.Add(dir); err != nil {
			log.Warn("cannot watch", "dir", dir, "error", err)
		}
	}
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			continue
		}
		if !info.IsDir() {
			add(filepath.Dir(p))
			continue
		}
		_ = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				add(path)
			}
			return nil
		})
	}
	go func() {
		// Bursts of events (a checkout touches many files) become one pass.
		var debounce <-chan time.Time
		for {
			select {
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				if ev.Op.Has(fsnotify.Create) {
					if info, err := os.Stat(ev.Name); err == nil && info.IsDir() {
						add(ev.Name)
					}
				}
				if ext := filepath.Ext(ev.Name); ext == ".yaml" || ext == ".yml" || ev.Op.Has(fsnotify.Create) {
					debounce = time.After(300 * time.Millisecond)
				}
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				log.Warn("watching the specs", "error", err)
			case <-debounce:
				log.Info("specs changed: starting a pass")
				trigger()
			}
		}
	}()
	return w, nil
}

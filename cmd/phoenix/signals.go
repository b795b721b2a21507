package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// interrupts is the two-stage stop of apply and run: the first SIGINT or
// SIGTERM closes stop (the changes in flight finish and are recorded, no new
// one starts), the second cancels ctx (what runs is aborted). Either way the
// cluster is left where the next apply resumes from. The handler is in place
// before anything starts.
type interrupts struct {
	ctx  context.Context
	stop chan struct{}
	done func()
}

// onInterrupt installs the handler; first and second are told which stage a
// signal started. Call done when the work is over.
func onInterrupt(parent context.Context, first func(os.Signal), second func()) *interrupts {
	ctx, cancel := context.WithCancel(parent)
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	in := &interrupts{ctx: ctx, stop: make(chan struct{})}
	finished := make(chan struct{})
	go func() {
		select {
		case s := <-sig:
			first(s)
			close(in.stop)
		case <-finished:
			return
		}
		select {
		case <-sig:
			second()
			cancel()
		case <-finished:
		}
	}()
	in.done = func() {
		signal.Stop(sig)
		close(finished)
		cancel()
	}
	return in
}

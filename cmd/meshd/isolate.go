package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/intermesh/intermesh/node"
)

// isolateOnSignals isolates n from the federation on SIGUSR1 and lets it
// rejoin on SIGUSR2, until ctx ends or the returned stop is called.
func isolateOnSignals(ctx context.Context, n *node.Node, logger *slog.Logger) (stop func()) {
	ch := make(chan os.Signal, 4)
	signal.Notify(ch, syscall.SIGUSR1, syscall.SIGUSR2)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case s := <-ch:
				if err := n.Isolate(s == syscall.SIGUSR1); err != nil {
					logger.Error("isolation signal", "signal", s, "err", err)
				}
			}
		}
	})
	return func() {
		signal.Stop(ch)
		cancel()
		wg.Wait()
	}
}

// Command meshctl is the Mesh user's side of every portal transaction: it
// creates profiles and keys in a local keystore (private keys never leave
// it), creates and deletes accounts, publishes and gets entries, connects
// devices, escrows and recovers keys, and reads a portal's status and log.
// As the auditor's tool, it verifies a whole federation offline (audit).
//
// Usage:
//
//	meshctl profile create --name alice
//	meshctl account create alice@example.com
//	meshctl device connect --account alice@example.com   (on the new device)
//	meshctl device pending; meshctl device accept MDEV-…  (on the admin device)
//	meshctl escrow create --shares 3 --threshold 2
//	meshctl transfer --out log.jsonl
//	meshctl audit --federation federation.toml [--node URL ...] [--cache DIR]
//
// Global flags: --portal URL (env MESHCTL_PORTAL), --home DIR (env
// MESHCTL_HOME), --json, --token (env MESHCTL_TOKEN). The exit code is 0 on
// success, 1 when an operation fails (a portal error prints its Status and
// StatusDescription) and 2 for a command-line mistake.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

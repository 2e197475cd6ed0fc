package testnet

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/intermesh/intermesh/merkle"
	"github.com/intermesh/intermesh/node"
	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/portal/client"
)

// Watch prints a report of every round from the members' public endpoints
// until ctx ends, as the in-process Watch does. A member's Status proves
// the latest certificate its latest checkpoint covers, which is that of the
// round before; so the report of round r is printed half a period after
// round r+1 closes. Traffic, if positive, is the interval of the generated
// portal transactions.
func (p *Processes) Watch(ctx context.Context, w io.Writer, traffic time.Duration) error {
	s := node.Schedule{Period: p.opts.Period}
	if traffic > 0 {
		done := make(chan struct{})
		defer func() { <-done }()
		go func() {
			defer close(done)
			p.Traffic(ctx, traffic)
		}()
	}
	for {
		at, round := s.NextClose(time.Now())
		timer := time.NewTimer(time.Until(at.Add(p.opts.Period / 2)))
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-timer.C:
		}
		if round == 0 {
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, p.opts.Period/2)
		rep := p.RoundReport(rctx, round-1)
		cancel()
		fmt.Fprintln(w, rep.String())
		for i, err := range p.Exited() {
			fmt.Fprintf(w, "  node%-2d EXITED (%v); it is not restarted\n", i, err)
		}
	}
}

// RoundReport asks every running member's portal for its Status and
// reports round r as each of them proves it: its own checkpoint of round r
// and the master-hash certificate of round r, if the member's latest
// checkpoint covers that certificate's MasterHash record.
func (p *Processes) RoundReport(ctx context.Context, r uint64) RoundReport {
	rep := RoundReport{Round: r, Nodes: make([]NodeRound, len(p.procs))}
	var wg sync.WaitGroup
	for i := range p.procs {
		if !p.Running(i) {
			continue
		}
		rep.Nodes[i].Running, rep.Nodes[i].Member = true, true // member processes run the federation file
		wg.Go(func() { rep.Nodes[i] = memberRound(ctx, p.PortalURL(i), p.fed.Members[i].Origin, r, p.vs) })
	}
	wg.Wait()
	return rep
}

// memberRound is one member's view of round r from its Status.
func memberRound(ctx context.Context, url, origin string, r uint64, vs note.Verifiers) NodeRound {
	nr := NodeRound{Running: true, Member: true}
	c, err := client.New(url)
	if err != nil {
		nr.Err = err
		return nr
	}
	st, err := c.Status(ctx)
	if err != nil {
		nr.Err = fmt.Errorf("status: %w", err)
		return nr
	}
	cert, err := certifiedRound(st, vs)
	switch {
	case err != nil:
		nr.Err = err
	case cert.round != r:
		nr.Err = fmt.Errorf("its Status proves round %d's certificate, not round %d's", cert.round, r)
	default:
		nr.MasterHash, nr.Covered, nr.Signatures = cert.masterHash, len(st.Peers), cert.signatures
		nr.Err = fmt.Errorf("its checkpoint of round %d is not in the certificate", r)
		for _, pp := range st.Peers {
			cp, err := merkle.ParseCheckpoint(noteText([]byte(pp.Checkpoint)))
			if err == nil && cp.Origin == origin {
				nr.Size, nr.Root, nr.Map, nr.Err = cp.Size, cp.Root, cp.Map, nil
			}
		}
	}
	return nr
}

// statusCertificate is the master-hash certificate a Status answer proves.
type statusCertificate struct {
	round      uint64
	masterHash []byte
	signatures int
}

// certifiedRound reads the certificate of a Status answer: every peer
// proof carries the same master-hash note; it must verify with the
// federation's keys.
func certifiedRound(st *portal.StatusResponse, vs note.Verifiers) (statusCertificate, error) {
	if len(st.Peers) == 0 {
		return statusCertificate{}, errors.New("its Status proves no certificate yet")
	}
	n, err := note.Open([]byte(st.Peers[0].MasterHash), vs)
	if err != nil {
		return statusCertificate{}, fmt.Errorf("its certificate does not verify: %w", err)
	}
	// Vote text: "<federation>/master\n<count>\n<base64 M_r>\nround <r>\n".
	lines := strings.Split(strings.TrimSuffix(n.Text, "\n"), "\n")
	if len(lines) < 4 {
		return statusCertificate{}, fmt.Errorf("its certificate has %d lines", len(lines))
	}
	var cert statusCertificate
	if cert.masterHash, err = base64.StdEncoding.DecodeString(lines[2]); err != nil {
		return statusCertificate{}, fmt.Errorf("its certificate's master hash: %w", err)
	}
	if _, err := fmt.Sscanf(lines[3], "round %d", &cert.round); err != nil {
		return statusCertificate{}, fmt.Errorf("its certificate's round line %q: %w", lines[3], err)
	}
	cert.signatures = len(n.Sigs)
	return cert, nil
}

// Traffic creates an account bound to a fresh signed profile every
// interval, round robin over the running members, until ctx ends, and
// returns the number created.
func (p *Processes) Traffic(ctx context.Context, interval time.Duration) int {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	created := 0
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return created
		case <-tick.C:
		}
		m := i % p.Size()
		if !p.Running(m) {
			continue
		}
		c, err := client.New(p.PortalURL(m))
		if err != nil {
			continue
		}
		entry, offline, err := newProfile()
		if err != nil {
			continue
		}
		actx, cancel := context.WithTimeout(ctx, p.opts.Period)
		_, err = CreateAccountWith(actx, c, p.Account(m, fmt.Sprintf("user%d-%d", time.Now().Unix(), i)), entry, offline)
		cancel()
		if err == nil {
			created++
		}
	}
}

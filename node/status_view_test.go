package node

import (
	"bytes"
	"encoding/base64"
	"slices"
	"testing"
	"time"

	"github.com/intermesh/intermesh/intermesh"
	"github.com/intermesh/intermesh/portal"
)

func TestGrowthRoundsAreFewEvenlySpreadAndEndAtTheLastClose(t *testing.T) {
	for _, tc := range []struct {
		closed, rounds uint64
		points, want   int
	}{
		{closed: 1_000_000, rounds: 3600, points: 120, want: 120}, // 1 s rounds: 120 reads, not 3,600
		{closed: 1_000_000, rounds: 360, points: 120, want: 120},
		{closed: 1_000_000, rounds: 10, points: 120, want: 11},
		{closed: 5, rounds: 5, points: 120, want: 6},
		{closed: 0, rounds: 0, points: 120, want: 1},
		{closed: 7, rounds: 3, points: 1, want: 1},
	} {
		got := growthRounds(tc.closed, tc.rounds, tc.points)
		if len(got) != tc.want {
			t.Errorf("growthRounds(%d, %d, %d): %d rounds, want %d", tc.closed, tc.rounds, tc.points, len(got), tc.want)
			continue
		}
		if got[0] != tc.closed-tc.rounds || (tc.points > 1 && got[len(got)-1] != tc.closed) {
			t.Errorf("growthRounds(%d, %d, %d) spans %d..%d, want %d..%d", tc.closed, tc.rounds, tc.points,
				got[0], got[len(got)-1], tc.closed-tc.rounds, tc.closed)
		}
		if !slices.IsSorted(got) || len(slices.Compact(slices.Clone(got))) != len(got) {
			t.Errorf("growthRounds(%d, %d, %d) = %v: not strictly increasing", tc.closed, tc.rounds, tc.points, got)
		}
	}
}

func TestTheHealthHeadlineReadsTheLatestRoundWithAnOutcome(t *testing.T) {
	const (
		ok   = portal.CellCertified
		miss = portal.CellMissing
		noq  = portal.CellNoQuorum
		pend = portal.CellPending
		unk  = portal.CellUnknown
		nm   = portal.CellNotMember
	)
	members := []string{"a", "b", "c"}
	grid := func(cols ...[]string) []portal.RoundStatus {
		var out []portal.RoundStatus
		for i, c := range cols {
			out = append(out, portal.RoundStatus{Round: uint64(100 + i), Cells: c})
		}
		return out
	}
	for _, tc := range []struct {
		name    string
		rounds  []portal.RoundStatus
		state   string
		round   uint64
		missing map[string]uint64 // origin → since round
		since   uint64            // no quorum since
	}{
		{"every member certified", grid([]string{ok, ok, ok}, []string{ok, ok, ok}), portal.HealthHealthy, 101, nil, 0},
		{"the round just closed is pending, not a lost quorum", grid([]string{ok, ok, ok}, []string{pend, pend, pend}), portal.HealthHealthy, 100, nil, 0},
		{"a member missing from the last two rounds", grid([]string{ok, ok, ok}, []string{ok, ok, miss}, []string{ok, ok, miss}), portal.HealthDegraded, 102, map[string]uint64{"c": 101}, 0},
		{"a miss before it came back does not count", grid([]string{ok, miss, ok}, []string{ok, ok, ok}), portal.HealthHealthy, 101, nil, 0},
		{"a member that joined later is not missing", grid([]string{ok, ok, nm}, []string{ok, ok, ok}), portal.HealthHealthy, 101, nil, 0},
		{"no certificate in the last rounds", grid([]string{ok, ok, ok}, []string{noq, noq, noq}, []string{unk, unk, unk}, []string{noq, noq, noq}), portal.HealthNoQuorum, 103, nil, 101},
		{"nothing committed", grid([]string{unk, unk, unk}, []string{pend, pend, pend}), portal.HealthUnknown, 0, nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := healthOf(tc.rounds, members, time.Second)
			if h.State != tc.state || h.Round != tc.round || len(h.Missing) != len(tc.missing) {
				t.Fatalf("%+v, want %s at round %d missing %v", h, tc.state, tc.round, tc.missing)
			}
			for _, m := range h.Missing {
				if since, ok := tc.missing[m.Origin]; !ok || m.SinceRound != since || !m.Since.Equal(time.Unix(int64(since), 0)) {
					t.Errorf("missing %+v, want %v", m, tc.missing)
				}
			}
			if tc.since != 0 && (h.Since == nil || !h.Since.Equal(time.Unix(int64(tc.since), 0))) {
				t.Errorf("no quorum since %v, want round %d", h.Since, tc.since)
			}
		})
	}
}

func TestAReplicaRowShowsItsRecomputedMap(t *testing.T) {
	root := bytes.Repeat([]byte{7}, 32)
	for _, tc := range []struct {
		name string
		st   intermesh.ReplicaState
		want portal.ReplicaStatus
	}{
		{"a map not opened yet has no size or root",
			intermesh.ReplicaState{Origin: "o", Size: 3, Known: 5},
			portal.ReplicaStatus{Origin: "o", Size: 3, Known: 5, LagRecords: 2}},
		{"an opened map shows its size and its root in base64, as a map line",
			intermesh.ReplicaState{Origin: "o", Size: 5, Known: 5, Map: intermesh.MapState{Opened: true, Size: 4, Root: root, Mismatches: 2}},
			portal.ReplicaStatus{Origin: "o", Size: 5, Known: 5, MapOpened: true, MapSize: 4,
				MapRoot: base64.StdEncoding.EncodeToString(root), MapMismatches: 2}},
		{"an opened empty map shows size 0",
			intermesh.ReplicaState{Origin: "o", Map: intermesh.MapState{Opened: true, Root: make([]byte, 32)}},
			portal.ReplicaStatus{Origin: "o", MapOpened: true, MapRoot: base64.StdEncoding.EncodeToString(make([]byte, 32))}},
		{"a busy replica still shows its size and mismatches",
			intermesh.ReplicaState{Origin: "o", Size: 9, Busy: true, Map: intermesh.MapState{Mismatches: 1}},
			portal.ReplicaStatus{Origin: "o", Size: 9, Busy: true, MapMismatches: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := replicaStatus(tc.st, 100); got != tc.want {
				t.Errorf("replicaStatus(%+v) = %+v, want %+v", tc.st, got, tc.want)
			}
		})
	}
}

package node

import (
	"slices"
	"testing"
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

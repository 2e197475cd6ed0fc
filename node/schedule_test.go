package node

import (
	"testing"
	"time"
)

func TestScheduleAlignsRoundsToTheClock(t *testing.T) {
	s := Schedule{Period: 10 * time.Second}
	tests := []struct {
		name      string
		at        time.Time
		round     uint64
		nextClose time.Time
	}{
		{"the first instant of a round", time.Unix(100, 0), 10, time.Unix(110, 0)},
		{"the middle of a round", time.Unix(105, 5), 10, time.Unix(110, 0)},
		{"the last nanosecond of a round", time.Unix(109, 999999999), 10, time.Unix(110, 0)},
		{"the Unix epoch", time.Unix(0, 0), 0, time.Unix(10, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := s.Round(tt.at); got != tt.round {
				t.Errorf("Round = %d, want %d", got, tt.round)
			}
			next, r := s.NextClose(tt.at)
			if !next.Equal(tt.nextClose) || r != tt.round {
				t.Errorf("NextClose = %v (round %d), want %v (round %d)", next, r, tt.nextClose, tt.round)
			}
			if !s.Close(tt.round).After(tt.at) {
				t.Errorf("round %d closes at %v, not after %v", tt.round, s.Close(tt.round), tt.at)
			}
		})
	}
}

package node

import "time"

// Schedule is the wall-clock epoch schedule every federation member shares:
// round r covers the Unix times [r*Period, (r+1)*Period), and is closed at
// (r+1)*Period. Because rounds are aligned to the clock, "round r" means the
// same interval on every node.
type Schedule struct {
	// Period is the length of a round: a whole number of seconds.
	Period time.Duration
}

// Round returns the round that t falls in.
func (s Schedule) Round(t time.Time) uint64 {
	return uint64(t.UnixNano() / int64(s.Period))
}

// Close returns the time at which round r is closed: the start of round r+1.
func (s Schedule) Close(r uint64) time.Time {
	return time.Unix(0, int64(r+1)*int64(s.Period)).UTC()
}

// NextClose returns the next round close strictly after t, and the round it
// closes.
func (s Schedule) NextClose(t time.Time) (time.Time, uint64) {
	r := s.Round(t)
	return s.Close(r), r
}

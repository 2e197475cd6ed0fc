package merkle

import "errors"

// Sentinel errors. Functions wrap them with %w and add what failed; callers
// test for them with errors.Is.
var (
	// ErrNotFound reports that a requested checkpoint does not exist.
	ErrNotFound = errors.New("merkle: not found")
	// ErrNotNextLeaf reports an append whose first leaf index is not the
	// current tree size (a gap or an overlap).
	ErrNotNextLeaf = errors.New("merkle: first leaf index is not the tree size")
	// ErrBeyondTree reports a leaf index or tree size beyond the stored tree.
	ErrBeyondTree = errors.New("merkle: beyond the tree size")
	// ErrCorrupt reports stored tree state that cannot be decoded.
	ErrCorrupt = errors.New("merkle: corrupt stored state")
	// ErrMalformedCheckpoint reports checkpoint text that is not in the
	// exact format documented on Checkpoint.
	ErrMalformedCheckpoint = errors.New("merkle: malformed checkpoint")
	// ErrSignature reports a signed note that does not carry a valid
	// signature of the checkpoint's origin.
	ErrSignature = errors.New("merkle: checkpoint not signed by its origin")
	// ErrInconsistent reports two checkpoints of one origin that cannot both
	// be honest views of one append-only log.
	ErrInconsistent = errors.New("merkle: inconsistent checkpoints")
	// ErrStaleRound reports an epoch close for a round that is not after the
	// latest closed round.
	ErrStaleRound = errors.New("merkle: round not after the latest closed round")
)

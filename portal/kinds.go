package portal

import "github.com/intermesh/intermesh/log"

// The kinds of record the portal appends to the log. The log stores a kind
// as an opaque string; these values are in every leaf already written, so
// they never change.
const (
	KindAccount           log.Kind = "Account"           // account created, deleted or changed status
	KindProfile           log.Kind = "Profile"           // any signed Mesh profile
	KindEscrow            log.Kind = "Escrow"            // an offline escrow entry
	KindConnectionRequest log.Kind = "ConnectionRequest" // a device asks to connect
	KindConnectionResult  log.Kind = "ConnectionResult"  // an administration device answers
)

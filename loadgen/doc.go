// Package loadgen drives real, signed Mathematical Mesh writes at a
// federation's portals and proves afterwards that none was lost.
//
// It owns three things:
//
//   - paced, open-loop generation (Run): accounts, each bound to a fresh
//     ProfileAccount, are created round robin over the portals, then signed
//     updates of their profiles are sent at a fixed rate for a duration; the
//     latency of a request counts from the time it was scheduled, so a
//     stalled portal shows as latency, not as a lower rate;
//   - the list of acknowledged writes (the acks file, JSON lines, one Write
//     each: the portal that acknowledged it, the identifier and the
//     envelope's PayloadDigest), appended to as the writes are acknowledged
//     and read back with ReadAcks;
//   - the verification of that list (Verify): every write is served by the
//     portal that acknowledged it, by every other member from its replica,
//     and is included in the portal's log under a checkpoint that a
//     master-hash certificate covers, using package audit's offline
//     verifiers (quorum of member signatures, RFC 6962 roots and inclusion
//     proofs).
//
// It does not own flags, exit codes or terminal handling ('meshctl load' is
// the command line; the soak test in package testnet calls Run and Verify
// directly), nor the wire formats or their verification (package audit), nor
// a node: it talks to portals only through package portal/client.
package loadgen

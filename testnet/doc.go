// Package testnet starts a federation of real intermesh nodes on 127.0.0.1,
// drives portal traffic at it and injects faults, for developers and tests.
package testnet

// Package portal serves the Mesh Portal Protocol (JSON over HTTP at
// /.well-known/mmm/) on top of a node's log.
package portal

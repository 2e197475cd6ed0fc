// Package mesh is the Mathematical Mesh 3.0 data model: UDF fingerprints,
// Ed448/X448 keys, DARE signed envelopes, profiles, connections and escrow.
package mesh

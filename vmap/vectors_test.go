package vmap

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// The JSON shapes of the conformance vectors in testdata (see
// testdata/README.md).

type vecValue struct {
	LatestIndex    uint64 `json:"latest_index"`
	LatestLeafHash string `json:"latest_leaf_hash"`
	Count          uint64 `json:"count"`
	History        string `json:"history"`
}

type treeVectors struct {
	About     string `json:"about"`
	EmptyRoot string `json:"empty_root"`
	Sequences []struct {
		Name  string `json:"name"`
		About string `json:"about"`
		Steps []struct {
			Step      int       `json:"step"`
			Op        string    `json:"op"`
			Namespace Namespace `json:"namespace"`
			Name      string    `json:"name"`
			Key       string    `json:"key"`
			Value     vecValue  `json:"value"`
			ValueHex  string    `json:"value_hex"`
			ValueHash string    `json:"value_hash"`
			Leaf      string    `json:"leaf"`
			Keys      int       `json:"keys"`
			Root      string    `json:"root"`
			Note      string    `json:"note"`
		} `json:"steps"`
	} `json:"sequences"`
}

type logVectors struct {
	About   string `json:"about"`
	Origin  string `json:"origin"`
	Records []struct {
		Index      uint64 `json:"index"`
		Leaf       string `json:"leaf"`
		LeafHash   string `json:"leaf_hash"`
		Seq        uint64 `json:"seq"`
		Time       int64  `json:"time"`
		Kind       string `json:"kind"`
		Identifier string `json:"identifier"`
		Account    string `json:"account"`
		Origin     string `json:"origin"`
		Payload    string `json:"payload"`
		Sets       []struct {
			Namespace Namespace `json:"namespace"`
			Name      string    `json:"name"`
		} `json:"sets"`
	} `json:"records"`
	Roots []struct {
		Size int    `json:"size"`
		Keys int    `json:"keys"`
		Root string `json:"root"`
	} `json:"roots"`
	Keys []struct {
		Namespace Namespace `json:"namespace"`
		Name      string    `json:"name"`
		Key       string    `json:"key"`
		vecValue
		Indices   []uint64 `json:"indices"`
		Value     string   `json:"value"`
		ValueHash string   `json:"value_hash"`
	} `json:"keys"`
}

// loadVectors decodes testdata/name into v, refusing unknown fields so that
// a field the tests do not read is noticed.
func loadVectors(t testing.TB, name string, v any) {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d := json.NewDecoder(f)
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// unhex decodes a hex string, failing the test on error.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("hex %q: %v", s, err)
	}
	return b
}

// hash32 decodes a 32-byte hex string.
func hash32(t testing.TB, s string) Hash {
	t.Helper()
	b := unhex(t, s)
	if len(b) != 32 {
		t.Fatalf("hex %q is %d bytes, want 32", s, len(b))
	}
	return Hash(b)
}

// toValue converts a vector's value fields.
func (v vecValue) toValue(t testing.TB) Value {
	return Value{
		LatestIndex:    v.LatestIndex,
		LatestLeafHash: hash32(t, v.LatestLeafHash),
		Count:          v.Count,
		History:        hash32(t, v.History),
	}
}

type vecProof struct {
	Result         string   `json:"result"`
	Depth          int      `json:"depth"`
	Siblings       []string `json:"siblings"`
	Value          string   `json:"value,omitempty"`
	OtherKey       string   `json:"other_key,omitempty"`
	OtherValueHash string   `json:"other_value_hash,omitempty"`
}

type proofCase struct {
	About     string    `json:"about"`
	Namespace Namespace `json:"namespace"`
	Name      string    `json:"name"`
	Key       string    `json:"key"`
	Root      string    `json:"root"`
	Proof     vecProof  `json:"proof"`
	Expect    string    `json:"expect"`
	Value     string    `json:"value"`
	Why       string    `json:"why"`
}

type proofVectors struct {
	About string `json:"about"`
	Size  int    `json:"size"`
	Root  string `json:"root"`
	Map   []struct {
		Namespace Namespace `json:"namespace"`
		Name      string    `json:"name"`
		Key       string    `json:"key"`
		Value     string    `json:"value"`
	} `json:"map"`
	Cases    []proofCase `json:"cases"`
	MustFail []proofCase `json:"must_fail"`
}

package vmap_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/intermesh/intermesh/vmap"
)

// The worked example of docs/formats.md, "Map lookup proofs": a log of two
// Profile records, for the identifiers "alice" (record 0) and "carol"
// (record 1), its map, and three lookup proofs under the map's root. Every
// hash is computed here from the definitions (package doc), with
// crypto/sha256 and the package's stable API only, never with Tree: the
// point is that a reader can recompute each line by hand.

// exampleLine is one labelled hex string of the worked example.
type exampleLine struct {
	label string
	hex   string
}

// exampleLeaf is the record leaf encoding (docs/formats.md, "Record leaf
// encoding") of a Profile record at seq with identifier id, time 0, no
// account, origin "n" and payload "{}".
func exampleLeaf(seq uint64, id string) []byte {
	b := []byte{0x01}
	b = binary.BigEndian.AppendUint64(b, seq)
	b = binary.BigEndian.AppendUint64(b, 0)
	for _, s := range []string{"Profile", id, "", "n"} {
		b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
		b = append(b, s...)
	}
	b = binary.BigEndian.AppendUint32(b, 2)
	return append(b, "{}"...)
}

// sha is SHA-256 of the concatenation of parts.
func sha(parts ...[]byte) vmap.Hash {
	return sha256.Sum256(bytes.Join(parts, nil))
}

// workedExample computes the worked example: its labelled hex strings, in
// the order the doc shows them, and an error if any proof does not do what
// the doc says.
func workedExample() ([]exampleLine, error) {
	var out []exampleLine
	add := func(label string, b []byte) { out = append(out, exampleLine{label, hex.EncodeToString(b)}) }

	type entry struct {
		name  string
		key   vmap.Key
		value vmap.Value
		leaf  vmap.Hash // the tree leaf SHA-256(0x02 || key || value_hash)
	}
	var entries []entry
	for i, name := range []string{"alice", "carol"} {
		key, err := vmap.KeyOf(vmap.Profile, name)
		if err != nil {
			return nil, err
		}
		leaf := exampleLeaf(uint64(i), name)
		leafHash := sha([]byte{0x00}, leaf)
		v := vmap.Value{}.Append(uint64(i), leafHash)
		vh := v.Hash()
		if want := sha([]byte("intermesh/map/v1/value\x00"), v.Marshal()); vh != want {
			return nil, fmt.Errorf("%s: Value.Hash %x, by hand %x", name, vh, want)
		}
		e := entry{name, key, v, sha([]byte{0x02}, key[:], vh[:])}
		entries = append(entries, e)
		add(name+" record leaf", leaf)
		add(name+" record leaf hash", leafHash[:])
		add(name+" key", key[:])
		add(name+" history", v.History[:])
		add(name+" value", v.Marshal())
		add(name+" value hash", vh[:])
		add(name+" tree leaf", e.leaf[:])
	}
	alice, carol := entries[0], entries[1]

	// Both keys start with bit 0; alice's second bit is 0 and carol's 1. So
	// the root's 1-side is empty and its 0-side is the interior node over
	// the two leaves.
	inner := sha([]byte{0x03}, alice.leaf[:], carol.leaf[:])
	var empty vmap.Hash
	root := sha([]byte{0x03}, inner[:], empty[:])
	add("interior node at depth 1 (bits 0)", inner[:])
	add("root", root[:])

	bob, err := vmap.KeyOf(vmap.Profile, "bob")
	if err != nil {
		return nil, err
	}
	frank, err := vmap.KeyOf(vmap.Profile, "frank")
	if err != nil {
		return nil, err
	}
	add("bob key", bob[:])
	add("frank key", frank[:])

	proofs := []struct {
		label   string
		key     vmap.Key
		proof   *vmap.Proof
		present bool
	}{
		{"inclusion proof of alice", alice.key, &vmap.Proof{
			Result: vmap.Inclusion, Depth: 2,
			Siblings: []vmap.Hash{empty, carol.leaf},
			Value:    alice.value.Marshal(),
		}, true},
		{"empty proof of bob", bob, &vmap.Proof{
			Result: vmap.Empty, Depth: 1,
			Siblings: []vmap.Hash{inner},
		}, false},
		{"other-leaf proof of frank", frank, &vmap.Proof{
			Result: vmap.OtherLeaf, Depth: 2,
			Siblings:       []vmap.Hash{empty, alice.leaf},
			OtherKey:       &carol.key,
			OtherValueHash: ptr(carol.value.Hash()),
		}, false},
	}
	for _, c := range proofs {
		v, present, err := vmap.Verify(root, c.key, c.proof)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.label, err)
		}
		if present != c.present || (present && v != alice.value) {
			return nil, fmt.Errorf("%s: Verify says present=%v value %+v", c.label, present, v)
		}
		b, err := c.proof.MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.label, err)
		}
		p, err := vmap.ParseProof(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.label, err)
		}
		again, err := p.MarshalBinary()
		if err != nil || !bytes.Equal(again, b) {
			return nil, fmt.Errorf("%s: re-encodes to %x (%v), not %x", c.label, again, err, b)
		}
		if _, _, err := vmap.Verify(root, c.key, p); err != nil {
			return nil, fmt.Errorf("%s, parsed: %w", c.label, err)
		}
		add(fmt.Sprintf("%s (%d bytes)", c.label, len(b)), b)
	}

	// The key is the verifier's own: alice's proof says nothing about bob,
	// nor under another root.
	if _, _, err := vmap.Verify(root, bob, proofs[0].proof); !errors.Is(err, vmap.ErrBadProof) {
		return nil, fmt.Errorf("alice's proof for bob's key: %v, want ErrBadProof", err)
	}
	if _, _, err := vmap.Verify(inner, alice.key, proofs[0].proof); !errors.Is(err, vmap.ErrBadProof) {
		return nil, fmt.Errorf("alice's proof under another root: %v, want ErrBadProof", err)
	}
	return out, nil
}

func ptr[T any](v T) *T { return &v }

// Example_workedExample prints the worked example of docs/formats.md, "Map
// lookup proofs", whose every hex string TestDocsWorkedExample finds in the
// doc.
func Example_workedExample() {
	lines, err := workedExample()
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, l := range lines {
		fmt.Printf("%s:\n  %s\n", l.label, l.hex)
	}
	// Output:
	// alice record leaf:
	//   0100000000000000000000000000000000000750726f66696c650005616c696365000000016e000000027b7d
	// alice record leaf hash:
	//   1c4e78f7cb82c94649617fbfdd72ea81856b622a6ec78ca525805a7d3726e6d3
	// alice key:
	//   25362c597c8be5c26621eeee36eef11adb859577117faa31f393f978658836e8
	// alice history:
	//   35c046a233048a0ff98c81a9886b99d62faf81cd14a75719aca338b7121ae337
	// alice value:
	//   00000000000000001c4e78f7cb82c94649617fbfdd72ea81856b622a6ec78ca525805a7d3726e6d3000000000000000135c046a233048a0ff98c81a9886b99d62faf81cd14a75719aca338b7121ae337
	// alice value hash:
	//   fc971998d889ce8a3439ddef2c10ac28c122319ab73d6b814bb087a34cf6aa4d
	// alice tree leaf:
	//   a44c7eeff1805185cc27e246fa2bec84d05127c4f73e9d4ca84697bc6c336369
	// carol record leaf:
	//   0100000000000000010000000000000000000750726f66696c6500056361726f6c000000016e000000027b7d
	// carol record leaf hash:
	//   a2edae49d77497ee89ecda38261bc89a0a3b92f6640e9e0a0190e270bc0428e8
	// carol key:
	//   72e211c66008c601f1db10007f7b5f2ae7bb02c88f4877753130a20f0d299c0f
	// carol history:
	//   5419284fcb9e47a8fa892d109f39bae4b0e199b29990c0966e824d02011a8013
	// carol value:
	//   0000000000000001a2edae49d77497ee89ecda38261bc89a0a3b92f6640e9e0a0190e270bc0428e800000000000000015419284fcb9e47a8fa892d109f39bae4b0e199b29990c0966e824d02011a8013
	// carol value hash:
	//   387a0010040f926ca9809027b35365643991974ab5e5aba4c061c5e459708550
	// carol tree leaf:
	//   6fc1eef7125af18c4e1d993086a6b0ca98bf19e633513e328af337cd9967b855
	// interior node at depth 1 (bits 0):
	//   980163107905fa9cf931de7534ee806e792b8834c9bbad195c88eab8219b5c00
	// root:
	//   1793154a2349e0714ed7f1ce4f42b1ba450b7db4e57edbdf1ce93a629b1c42d7
	// bob key:
	//   bc1f423694306de56d3971a802f0cbcb1d300af1479dbdaffa04a8aca530b06f
	// frank key:
	//   74f1c6a95446e2a390a260f7efd32f99c7bda6fd0f2d058dad4b9faac7aca568
	// inclusion proof of alice (116 bytes):
	//   010002806fc1eef7125af18c4e1d993086a6b0ca98bf19e633513e328af337cd9967b85500000000000000001c4e78f7cb82c94649617fbfdd72ea81856b622a6ec78ca525805a7d3726e6d3000000000000000135c046a233048a0ff98c81a9886b99d62faf81cd14a75719aca338b7121ae337
	// empty proof of bob (36 bytes):
	//   03000100980163107905fa9cf931de7534ee806e792b8834c9bbad195c88eab8219b5c00
	// other-leaf proof of frank (100 bytes):
	//   02000280a44c7eeff1805185cc27e246fa2bec84d05127c4f73e9d4ca84697bc6c33636972e211c66008c601f1db10007f7b5f2ae7bb02c88f4877753130a20f0d299c0f387a0010040f926ca9809027b35365643991974ab5e5aba4c061c5e459708550
}

// TestDocsWorkedExample checks that every hex string of the worked example
// appears in docs/formats.md's section "Map lookup proofs" (spaces and line
// breaks inside it allowed), so that the doc cannot drift from the code.
func TestDocsWorkedExample(t *testing.T) {
	lines, err := workedExample()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("../docs/formats.md")
	if err != nil {
		t.Fatal(err)
	}
	const heading = "## Map lookup proofs (`vmap/encoding.go`)\n"
	_, section, ok := strings.Cut(string(doc), heading)
	if !ok {
		t.Fatalf("docs/formats.md has no section %q", strings.TrimSpace(heading))
	}
	if next := strings.Index(section, "\n## "); next >= 0 {
		section = section[:next]
	}
	flat := regexp.MustCompile(`\s+`).ReplaceAllString(section, "")
	for _, l := range lines {
		if !strings.Contains(flat, l.hex) {
			t.Errorf("docs/formats.md, Map lookup proofs, lacks the %s:\n%s", l.label, l.hex)
		}
	}
}

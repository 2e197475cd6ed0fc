package testnet_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"filippo.io/torchwood"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/intermesh/intermesh/intermesh"
	"github.com/intermesh/intermesh/merkle"
	"github.com/intermesh/intermesh/testnet"
)

// verifyCertificate checks a federation's master-hash certificate the way
// any transparency-log tool can, with golang.org/x/mod/sumdb/note,
// golang.org/x/mod/sumdb/tlog and filippo.io/torchwood only (nothing of
// this project): the certificate is a signed note that at least quorum
// members signed, its text is "<federation>/master", the number of
// checkpoints, base64 M_r and "round <r>"; every checkpoint it covers is
// signed by its origin, is of round r, and they come in increasing origin
// order; and M_r is the RFC 6962 root over the leaves
// origin || SHA-256(signed checkpoint note).
func verifyCertificate(federation string, memberKeys []string, quorum int, certificate string, checkpoints []string) (string, error) {
	var vs []note.Verifier
	for _, k := range memberKeys {
		v, err := note.NewVerifier(k)
		if err != nil {
			return "", err
		}
		vs = append(vs, v)
	}
	members := note.VerifierList(vs...)
	cert, err := note.Open([]byte(certificate), members)
	if err != nil {
		return "", fmt.Errorf("certificate: %w", err)
	}
	var signers []string
	for _, s := range cert.Sigs {
		if !slices.Contains(signers, s.Name) {
			signers = append(signers, s.Name)
		}
	}
	if len(signers) < quorum {
		return "", fmt.Errorf("certificate: %d member signatures, the quorum is %d", len(signers), quorum)
	}
	lines := strings.Split(cert.Text, "\n")
	if len(lines) != 5 || lines[0] != federation+"/master" || lines[1] != fmt.Sprint(len(checkpoints)) || !strings.HasPrefix(lines[3], "round ") {
		return "", errors.New("certificate: not a master-hash note over these checkpoints")
	}
	var stored []tlog.Hash
	reader := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = stored[x]
		}
		return out, nil
	})
	prev := ""
	for i, c := range checkpoints {
		n, err := note.Open([]byte(c), members)
		if err != nil {
			return "", fmt.Errorf("checkpoint %d: %w", i, err)
		}
		cp, err := torchwood.ParseCheckpoint(n.Text)
		if err != nil {
			return "", fmt.Errorf("checkpoint %d: %w", i, err)
		}
		if !slices.ContainsFunc(n.Sigs, func(s note.Signature) bool { return s.Name == cp.Origin }) {
			return "", fmt.Errorf("checkpoint of %s: not signed by its origin", cp.Origin)
		}
		if !strings.HasPrefix(cp.Extension, lines[3]+"\n") || cp.Origin <= prev {
			return "", fmt.Errorf("checkpoint of %s: not of %s, or out of origin order", cp.Origin, lines[3])
		}
		prev = cp.Origin
		digest := sha256.Sum256([]byte(c))
		hashes, err := tlog.StoredHashes(int64(i), append([]byte(cp.Origin), digest[:]...), reader)
		if err != nil {
			return "", err
		}
		stored = append(stored, hashes...)
	}
	root, err := tlog.TreeHash(int64(len(checkpoints)), reader)
	if err != nil {
		return "", err
	}
	if base64.StdEncoding.EncodeToString(root[:]) != lines[2] {
		return "", fmt.Errorf("M_r recomputed from the checkpoints is %s, the certificate says %s", root, lines[2])
	}
	return fmt.Sprintf("%s: %d of %d members signed (quorum %d), M_r %s over %d checkpoints",
		lines[3], len(signers), len(memberKeys), quorum, lines[2][:12], len(checkpoints)), nil
}

// Example_verifyCertificate verifies a certificate of a four-member
// federation with stock tools; a changed checkpoint breaks it.
func Example_verifyCertificate() {
	federation, keys, certificate, checkpoints := exampleCertificate()
	fmt.Println(verifyCertificate(federation, keys, 3, certificate, checkpoints))

	changed := slices.Clone(checkpoints)
	changed[2] = strings.Replace(changed[2], "\n7\n", "\n8\n", 1)
	_, err := verifyCertificate(federation, keys, 3, certificate, changed)
	fmt.Println(err != nil)
	_, err = verifyCertificate(federation, keys, 4, certificate, checkpoints)
	fmt.Println(err)
	// Output:
	// round 172800001: 3 of 4 members signed (quorum 3), M_r ei9Bxy7QFyQm over 4 checkpoints <nil>
	// true
	// certificate: 3 member signatures, the quorum is 4
}

// exampleCertificate makes, with fixed keys, what a federation "example"
// of four members certifies in round 172800001: their checkpoints and the
// note three of them signed (the format of docs/formats.md).
func exampleCertificate() (federation string, keys []string, certificate string, checkpoints []string) {
	federation = "example"
	var signers []note.Signer
	var leaves [][]byte
	for i := range 4 {
		origin := fmt.Sprintf("example/node%d", i)
		key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{byte(i + 1)}, 32))
		s, _ := merkle.NewSigner(origin, key)
		vkey, _ := merkle.VerifierKey(origin, key.Public().(ed25519.PublicKey))
		root := sha256.Sum256([]byte(origin))
		signed, _ := merkle.SignCheckpoint(merkle.Checkpoint{Origin: origin, Size: uint64(5 + i), Root: root[:], Round: 172800001, Time: 1728000010}, s)
		keys, signers, checkpoints = append(keys, vkey), append(signers, s), append(checkpoints, string(signed))
		h := sha256.Sum256(append([]byte{0}, intermesh.MasterLeaf(origin, signed)...))
		leaves = append(leaves, h[:])
	}
	mr, _ := merkle.LeafRoot(leaves, 4)
	text := fmt.Sprintf("%s/master\n4\n%s\nround 172800001\n", federation, base64.StdEncoding.EncodeToString(mr))
	cert, _ := note.Sign(&note.Note{Text: text}, signers[0], signers[1], signers[3])
	return federation, keys, string(cert), checkpoints
}

// TestStockToolsVerifyARealCertificate runs the example's verifier on a
// certificate that a running federation made.
func TestStockToolsVerifyARealCertificate(t *testing.T) {
	httpBase, err := testnet.FreeBasePort(3)
	if err != nil {
		t.Fatal(err)
	}
	p2pBase, err := testnet.FreeBasePort(3, httpBase)
	if err != nil {
		t.Fatal(err)
	}
	tn, err := testnet.Start(t.Context(), testnet.Options{Layout: testnet.Layout{
		Dir: t.TempDir(), Nodes: 3, HTTPBasePort: httpBase, P2PBasePort: p2pBase, Period: time.Second,
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tn.Close() })
	fed := tn.Federation()
	var keys []string
	for _, m := range fed.Members {
		keys = append(keys, m.Key)
	}
	var cert intermesh.Certificate
	err = testnet.WaitFor(t.Context(), 30*time.Second, "a certificate covering every member", func() bool {
		var ok bool
		cert, ok = tn.Node(1).Mesh().LatestCertificate()
		return ok && len(cert.Checkpoints) == 3
	})
	if err != nil {
		t.Fatal(err)
	}
	var cps []string
	for _, c := range cert.Checkpoints {
		cps = append(cps, string(c))
	}
	got, err := verifyCertificate(fed.Name, keys, fed.EffectiveQuorum(), string(cert.Note), cps)
	if err != nil {
		t.Fatalf("a real certificate does not verify with stock tools: %v", err)
	}
	if !strings.HasPrefix(got, fmt.Sprintf("round %d: ", cert.Round)) {
		t.Fatalf("verified %q, want round %d", got, cert.Round)
	}
	// Each covered checkpoint matters.
	cps[1] = strings.Replace(cps[1], "\nround ", "\nround 1", 1)
	if _, err := verifyCertificate(fed.Name, keys, fed.EffectiveQuorum(), string(cert.Note), cps); err == nil {
		t.Fatal("a certificate with a changed checkpoint verified")
	}
}

package node

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/intermesh/intermesh/config"
)

// writeFederation writes a federation file holding the node of c (unless
// leaveOut) and one other member, and points c at it.
func writeFederation(t *testing.T, c *config.Config, period time.Duration, leaveOut bool) {
	t.Helper()
	key, err := config.LoadKey(c.KeyPath())
	if err != nil {
		t.Fatal(err)
	}
	other, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	fed := &config.Federation{Name: "test", EpochPeriod: config.Duration{Duration: period}}
	add := func(origin string, pub ed25519.PublicKey) {
		vkey, err := config.VerifierKey(origin, pub)
		if err != nil {
			t.Fatal(err)
		}
		id, err := config.PeerIDFromKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		fed.Members = append(fed.Members, config.Member{Origin: origin, PeerID: id.String(), Key: vkey,
			Addrs: []string{"/ip4/127.0.0.1/tcp/1"}})
	}
	if !leaveOut {
		add(c.Origin, key.Public().(ed25519.PublicKey))
	}
	add("test.example/other", other)
	path := filepath.Join(c.Dir, "federation.toml")
	if err := fed.Write(path); err != nil {
		t.Fatal(err)
	}
	c.P2P.Federation = "federation.toml"
	c.P2P.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
}

func TestNodeRefusesAFederationItCannotJoin(t *testing.T) {
	tests := []struct {
		name     string
		period   time.Duration
		leaveOut bool
		want     string
	}{
		{"a federation that does not list the node", time.Second, true, "test.example/node"},
		{"a federation with another epoch period", 2 * time.Second, false, "epoch_period"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestNode(t, t.TempDir())
			writeFederation(t, &c, tt.period, tt.leaveOut)
			n, err := New(context.Background(), c, nil)
			if err == nil {
				n.Close()
				t.Fatal("New joined a federation it should have refused")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: %v, want an error naming %q", err, tt.want)
			}
		})
	}
}

func TestNodeInAFederationOfOneCertifiesItsOwnRounds(t *testing.T) {
	c := newSoloNode(t)
	n, err := New(context.Background(), c, nil)
	if err != nil {
		t.Fatal(err)
	}
	runNode(t, n)
	waitFor(t, 10*time.Second, "a certificate", func() bool {
		_, ok := n.Mesh().LatestCertificate()
		return ok
	})
	waitFor(t, 10*time.Second, "proof chains in Status", func() bool {
		signed, err := n.Tree().LatestCheckpoint()
		if err != nil {
			return false
		}
		proofs, err := n.PeerProofs(context.Background(), signed)
		return err == nil && len(proofs) == 1 && proofs[0].Origin == c.Origin && proofs[0].MasterRecordIndex != nil
	})
}

func TestARestartedNodeProvesItsLatestCertificateAtOnce(t *testing.T) {
	c := newSoloNode(t)
	n, err := New(context.Background(), c, nil)
	if err != nil {
		t.Fatal(err)
	}
	stop := runNode(t, n)
	var latest []byte
	waitFor(t, 10*time.Second, "proof chains in Status", func() bool {
		latest, err = n.Tree().LatestCheckpoint()
		if err != nil {
			return false
		}
		proofs, err := n.PeerProofs(context.Background(), latest)
		return err == nil && len(proofs) == 1
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// Restarted (not run: no new round can commit), it still proves the
	// certificate its last checkpoint covers.
	n2, err := New(context.Background(), c, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer n2.Close()
	latest, err = n2.Tree().LatestCheckpoint()
	if err != nil {
		t.Fatal(err)
	}
	proofs, err := n2.PeerProofs(context.Background(), latest)
	if err != nil || len(proofs) != 1 || proofs[0].MasterRecordIndex == nil {
		t.Fatalf("after a restart: %+v, %v", proofs, err)
	}
}

// newSoloNode initializes a node that is the only member of its federation,
// so that it certifies its rounds alone.
func newSoloNode(t *testing.T) config.Config {
	t.Helper()
	c := newTestNode(t, t.TempDir())
	writeFederation(t, &c, time.Second, false)
	fed, err := config.LoadFederation(c.FederationPath())
	if err != nil {
		t.Fatal(err)
	}
	fed.Members = fed.Members[:1]
	if err := fed.Write(c.FederationPath()); err != nil {
		t.Fatal(err)
	}
	return c
}

package testnet

import (
	"context"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/portal/client"
	"github.com/intermesh/intermesh/portal/mesh"
)

// NewProfile makes a fresh signed ProfileMesh entry, as a Mesh user's client
// would ({"ProfileMesh":[header, payload, trailer]}), and returns it with its
// identifier (the UDF of its offline key) and that key, with which
// CreateAccountWith signs the profile's consent to a binding.
func NewProfile() (entry []byte, identifier string, offline *mesh.PrivateKey, err error) {
	entry, offline, err = newProfile()
	if err != nil {
		return nil, "", nil, err
	}
	return entry, offline.UDF().String(), offline, nil
}

// newProfile makes a fresh signed ProfileMesh entry and returns it with its
// offline key.
func newProfile() (entry []byte, offline *mesh.PrivateKey, err error) {
	offline, err = mesh.GenerateKey(rand.Reader, mesh.CurveEd448)
	if err != nil {
		return nil, nil, err
	}
	admin, err := mesh.GenerateKey(rand.Reader, mesh.CurveEd448)
	if err != nil {
		return nil, nil, err
	}
	enc, err := mesh.GenerateKey(rand.Reader, mesh.CurveX448)
	if err != nil {
		return nil, nil, err
	}
	p := &mesh.ProfileMesh{
		Profile: mesh.Profile{
			KeyOfflineSignature: mesh.NewKeyData(offline.Public()),
			KeysOnlineSignature: []mesh.KeyData{*mesh.NewKeyData(admin.Public())},
		},
		KeyEncryption: mesh.NewKeyData(enc.Public()),
	}
	env, err := mesh.SignObject(p, offline)
	if err != nil {
		return nil, nil, err
	}
	entry, err = mesh.MarshalEntry(p.TypeName(), env)
	if err != nil {
		return nil, nil, err
	}
	return entry, offline, nil
}

// Traffic creates an account bound to a fresh profile (which publishes it) every
// interval, round robin over the running nodes, until ctx ends. Failures of
// stopped nodes are skipped; it returns the number of accounts created.
func (t *Testnet) Traffic(ctx context.Context, interval time.Duration) int {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	created := 0
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return created
		case <-tick.C:
		}
		n := i % t.Size()
		if t.Node(n) == nil {
			continue
		}
		if err := t.createAccount(ctx, n, t.Account(n, fmt.Sprintf("user%d", i))); err == nil {
			created++
		}
	}
}

// createAccount binds account to a new profile at node n; the portal
// registers the profile in the same record.
func (t *Testnet) createAccount(ctx context.Context, n int, account string) error {
	c, err := client.New(t.PortalURL(n))
	if err != nil {
		return err
	}
	entry, offline, err := newProfile()
	if err != nil {
		return err
	}
	_, err = CreateAccountWith(ctx, c, account, entry, offline)
	return err
}

// CreateAccountWith binds account to profile at the portal c with the
// consent of key, the profile's offline key or one of its online keys: an
// AccountProof for CreateAccount naming the portal as its Hello does.
func CreateAccountWith(ctx context.Context, c *client.Client, account string, profile []byte, key *mesh.PrivateKey) (*portal.CreateResponse, error) {
	hello, err := c.Hello(ctx)
	if err != nil {
		return nil, fmt.Errorf("testnet: asking the portal its name for the consent to bind %q: %w", account, err)
	}
	proof, err := portal.SignAccountProof(hello.Service, account, portal.TxCreateAccount, profile, time.Now(), key)
	if err != nil {
		return nil, err
	}
	return c.CreateAccount(ctx, &portal.CreateRequest{Account: account, Profile: profile, Proof: proof})
}

package loadgen

import (
	"crypto/rand"
	"encoding/base64"
	"sync"
	"time"

	"github.com/intermesh/intermesh/portal/mesh"
)

// account is one account the load created: its keys stay in memory.
type account struct {
	name    string
	portal  int // index of the portal it was created at (and is updated at)
	offline *mesh.PrivateKey
	enc     *mesh.KeyData
	auth    *mesh.KeyData
	admins  [2]*mesh.KeyData // the administration keys versions alternate between
	id      string           // the profile's UDF

	// mu serializes the account's updates: each version must carry a
	// later Updated than the one registered, so versions are signed and
	// sent one after the other.
	mu      sync.Mutex
	updated time.Time // Updated of the latest version signed
	version int       // versions signed
}

// newAccount makes the keys of an account and its first profile entry,
// with that entry's PayloadDigest.
func newAccount(name string, portal int) (*account, []byte, string, error) {
	offline, err := mesh.GenerateKey(rand.Reader, mesh.CurveEd448)
	if err != nil {
		return nil, nil, "", err
	}
	enc, err := mesh.GenerateKey(rand.Reader, mesh.CurveX448)
	if err != nil {
		return nil, nil, "", err
	}
	auth, err := mesh.GenerateKey(rand.Reader, mesh.CurveX448)
	if err != nil {
		return nil, nil, "", err
	}
	a := &account{name: name, portal: portal, offline: offline, id: offline.UDF().String(),
		enc: mesh.NewKeyData(enc.Public()), auth: mesh.NewKeyData(auth.Public())}
	for i := range a.admins {
		admin, err := mesh.GenerateKey(rand.Reader, mesh.CurveEd448)
		if err != nil {
			return nil, nil, "", err
		}
		a.admins[i] = mesh.NewKeyData(admin.Public())
	}
	entry, digest, err := a.profile()
	return a, entry, digest, err
}

// profile signs a new version of the account's ProfileAccount, with the
// administration key the previous version did not have and an Updated time
// later than the previous version's, and returns the entry and its
// PayloadDigest. (Making a fresh key for every version would cost the
// client an Ed448 key generation per write.)
func (a *account) profile() ([]byte, string, error) {
	admin := a.admins[a.version%len(a.admins)]
	a.version++
	updated := time.Now().UTC().Truncate(time.Microsecond)
	if !updated.After(a.updated) {
		updated = a.updated.Add(time.Microsecond)
	}
	a.updated = updated
	p := &mesh.ProfileAccount{
		Profile: mesh.Profile{
			Assertion:           mesh.Assertion{Updated: &updated},
			KeyOfflineSignature: mesh.NewKeyData(a.offline.Public()),
			KeysOnlineSignature: []mesh.KeyData{*admin},
		},
		AccountAddresses:  []string{a.name},
		KeyEncryption:     a.enc,
		KeyAuthentication: a.auth,
	}
	env, err := mesh.SignObject(p, a.offline)
	if err != nil {
		return nil, "", err
	}
	entry, err := mesh.MarshalEntry(p.TypeName(), env)
	if err != nil {
		return nil, "", err
	}
	return entry, b64url(env.Trailer.PayloadDigest), nil
}

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

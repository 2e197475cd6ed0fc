package testnet

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/intermesh/intermesh/config"
)

// FederationFile is the name of the federation file Generate writes into the
// testnet directory.
const FederationFile = "federation.toml"

// Layout says where a generated testnet lives and which ports it uses.
type Layout struct {
	// Dir holds one directory per node (node0, node1, ...) and the
	// federation file.
	Dir string
	// Nodes is the number of nodes, at least 1.
	Nodes int
	// Name is the federation name. Default "testnet".
	Name string
	// HTTPBasePort: node i serves its portal on 127.0.0.1:HTTPBasePort+i.
	HTTPBasePort int
	// P2PBasePort: node i listens for libp2p on TCP and UDP (QUIC)
	// 127.0.0.1:P2PBasePort+i.
	P2PBasePort int
	// Period is the epoch period.
	Period time.Duration
	// Quorum is the federation quorum; 0 uses the default, floor(2n/3)+1.
	Quorum int
	// AdminToken is every node's http.admin_token (the operator's token,
	// for federation updates). Optional: none.
	AdminToken string
}

// Origin is the log name of node i of a testnet.
func (l Layout) Origin(i int) string { return fmt.Sprintf("%s/node%d", l.Name, i) }

// Domain is the account domain node i serves, its line of the federation
// file says: example.com for node 0, node<i>.example.com for node i > 0.
// A node creates accounts NAME@DOMAIN of its domain only.
func (l Layout) Domain(i int) string {
	if i == 0 {
		return "example.com"
	}
	return fmt.Sprintf("node%d.example.com", i)
}

// accountAt is the account name NAME@DOMAIN of name at member i of fed:
// its first domain, or the layout's domain of node i if it lists none (a
// federation file written before members had domains serves every name;
// a node that has not joined yet will serve that one).
func accountAt(fed *config.Federation, l Layout, i int, name string) string {
	if i < len(fed.Members) && len(fed.Members[i].Domains) > 0 {
		return name + "@" + fed.Members[i].Domains[0]
	}
	return name + "@" + l.Domain(i)
}

// NodeDir is the directory of node i.
func (l Layout) NodeDir(i int) string { return filepath.Join(l.Dir, fmt.Sprintf("node%d", i)) }

// Generate creates the node directories (keys and config files) and the
// shared federation file of a testnet. It refuses a directory that already
// holds a testnet.
func Generate(l Layout) (*config.Federation, error) {
	if l.Nodes < 1 {
		return nil, fmt.Errorf("testnet: %d nodes: need at least 1", l.Nodes)
	}
	if l.Name == "" {
		l.Name = "testnet"
	}
	if err := os.MkdirAll(l.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("testnet: %w", err)
	}
	fed := &config.Federation{Name: l.Name, Quorum: l.Quorum, EpochPeriod: config.Duration{Duration: l.Period}}
	for i := 0; i < l.Nodes; i++ {
		m, err := l.GenerateNode(i, l.HTTPBasePort+i, l.P2PBasePort+i)
		if err != nil {
			return nil, err
		}
		fed.Members = append(fed.Members, m)
	}
	if err := fed.Validate(); err != nil {
		return nil, err
	}
	fed.Quorum = fed.EffectiveQuorum() // the file says the number, not 0 for "the default"
	if err := fed.Write(filepath.Join(l.Dir, FederationFile)); err != nil {
		return nil, err
	}
	return fed, nil
}

// GenerateNode creates the directory of node i (key and config file, the
// config naming the testnet's federation file) with its portal on
// 127.0.0.1:httpPort and libp2p on TCP and QUIC 127.0.0.1:p2pPort, and
// returns its [[member]] entry, which serves the domain Domain(i).
// Generate calls it for every node; a test
// calls it for a node that joins later by a federation update.
func (l Layout) GenerateNode(i, httpPort, p2pPort int) (config.Member, error) {
	if l.Name == "" {
		l.Name = "testnet"
	}
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return config.Member{}, fmt.Errorf("testnet: %w", err)
	}
	p2p := []string{
		fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", p2pPort),
		fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1", p2pPort),
	}
	fedPath, err := filepath.Rel(l.NodeDir(i), filepath.Join(l.Dir, FederationFile))
	if err != nil {
		return config.Member{}, fmt.Errorf("testnet: %w", err)
	}
	c, err := config.Init(l.NodeDir(i), config.InitOptions{
		Origin:      l.Origin(i),
		HTTPListen:  fmt.Sprintf("127.0.0.1:%d", httpPort),
		P2PListen:   p2p,
		Federation:  fedPath,
		EpochPeriod: config.Duration{Duration: l.Period},
		Key:         key,
		// A testnet is for looking at: anyone may pull its logs.
		TransferPublic: true,
		AdminToken:     l.AdminToken,
	})
	if err != nil {
		return config.Member{}, err
	}
	vkey, err := config.VerifierKey(c.Origin, pub)
	if err != nil {
		return config.Member{}, err
	}
	id, err := config.PeerIDFromKey(pub)
	if err != nil {
		return config.Member{}, fmt.Errorf("testnet: %w", err)
	}
	return config.Member{Origin: c.Origin, PeerID: id.String(), Key: vkey, Addrs: p2p, HTTP: "http://" + c.HTTP.Listen,
		Domains: []string{l.Domain(i)}}, nil
}

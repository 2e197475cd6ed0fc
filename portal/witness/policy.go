package witness

import (
	"bufio"
	"bytes"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// Policy is a log's witness policy: the witnesses it submits its
// checkpoints to, and how many of them must cosign a checkpoint before it
// is served as cosigned.
//
// Its text form, one statement a line, '#' starting a comment, as in
// Sigsum's and Tessera's policy files:
//
//	witness NAME VKEY URL   a witness: a local name, its cosignature/v1 verifier key
//	                        (name+keyID+base64(0x04 || Ed25519 key)), and its
//	                        submission prefix (add-checkpoint is POSTed to URL/add-checkpoint)
//	quorum N                how many of the listed witnesses must cosign (default: all)
type Policy struct {
	// Witnesses are the listed witnesses, in file order.
	Witnesses []PolicyWitness
	// Quorum is how many of them must cosign a checkpoint.
	Quorum int
}

// PolicyWitness is one witness of a policy.
type PolicyWitness struct {
	// Name is the witness's local name in the policy.
	Name string
	// Verifier checks its cosignatures.
	Verifier *CosignatureVerifier
	// URL is its submission prefix.
	URL string
}

// maxPolicyWitnesses bounds a policy.
const maxPolicyWitnesses = 64

// ParsePolicy parses a policy's text form, naming the line of any mistake.
func ParsePolicy(text []byte) (*Policy, error) {
	p := &Policy{Quorum: -1}
	names := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		bad := func(format string, a ...any) (*Policy, error) {
			return nil, fmt.Errorf("witness policy line %d: %s", n, fmt.Sprintf(format, a...))
		}
		switch f[0] {
		case "witness":
			if len(f) != 4 {
				return bad("want: witness NAME VKEY URL")
			}
			if names[f[1]] {
				return bad("witness %q is listed twice", f[1])
			}
			v, err := NewCosignatureVerifier(f[2])
			if err != nil {
				return bad("%v", err)
			}
			u, err := url.Parse(f[3])
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return bad("URL %q is not an http(s) URL", f[3])
			}
			if len(p.Witnesses) == maxPolicyWitnesses {
				return bad("more than %d witnesses", maxPolicyWitnesses)
			}
			names[f[1]] = true
			p.Witnesses = append(p.Witnesses, PolicyWitness{Name: f[1], Verifier: v, URL: strings.TrimSuffix(f[3], "/")})
		case "quorum":
			q, err := strconv.Atoi(strings.Join(f[1:], " "))
			if len(f) != 2 || err != nil || q < 0 {
				return bad("want: quorum N, with N a number of witnesses")
			}
			if p.Quorum >= 0 {
				return bad("a second quorum line")
			}
			p.Quorum = q
		default:
			return bad("unknown statement %q (want witness or quorum)", f[0])
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("witness policy: %w", err)
	}
	if p.Quorum < 0 {
		p.Quorum = len(p.Witnesses)
	}
	if p.Quorum > len(p.Witnesses) {
		return nil, fmt.Errorf("witness policy: quorum %d of only %d witnesses", p.Quorum, len(p.Witnesses))
	}
	return p, nil
}

package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"

	"github.com/intermesh/intermesh/config"
	"github.com/intermesh/intermesh/merkle"
	"github.com/intermesh/intermesh/node"
)

// newFederationCommand is 'meshctl federation': changing a federation's
// members by quorum-signed updates (see docs/formats.md, Federation updates).
func newFederationCommand(opts *globalOptions) *cobra.Command {
	c := &cobra.Command{
		Use:   "federation",
		Short: "Propose, sign and follow updates of the federation's members",
		Long: `A federation changes by updates: signed notes that list the whole new member
set, certified by a quorum of the current members (and by every key new in
it), in force from the round they name. 'propose' writes the next version's
text from a node's current one; 'sign' adds a member's signature with its
node key and hands the update to nodes (POST /federation, with --token set to
the node's http.admin_token); 'status' shows each node's version and the
proposals it holds.`,
		Args: noSubcommand,
		RunE: missingSubcommand,
	}
	c.AddCommand(newFederationProposeCommand(opts), newFederationSignCommand(opts), newFederationStatusCommand(opts))
	return c
}

func newFederationProposeCommand(opts *globalOptions) *cobra.Command {
	var add, rotate, remove []string
	var quorum int
	var in uint64
	var out string
	cmd := &cobra.Command{
		Use:   "propose [--add MEMBER.toml] [--remove ORIGIN] [--rotate MEMBER.toml] [--quorum N] [--in ROUNDS] [--out FILE]",
		Short: "Write the text of the federation's next version",
		Long: `Propose reads the latest version from the node at --portal (GET /federation)
and writes the next version's text: with the members of MEMBER.toml added
(a [[member]] entry as 'meshd member' prints it), the members named removed,
the members of --rotate replaced (same origin, new key or addresses), the
quorum set (0: floor(2n/3)+1), in force --in rounds from now. Sign it with
'meshctl federation sign'.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := getFederationState(cmd.Context(), opts.portal)
			if err != nil {
				return err
			}
			cur, err := config.ParseFederationText([]byte(st.Text))
			if err != nil {
				return fmt.Errorf("the node's current version: %w", err)
			}
			next := cur.Federation
			next.Members = slices.Clone(cur.Members)
			next.Quorum = quorum
			for _, origin := range remove {
				i := slices.IndexFunc(next.Members, func(m config.Member) bool { return m.Origin == origin })
				if i < 0 {
					return usagef(cmd, "--remove %s: not a member of version %d", origin, cur.Version)
				}
				next.Members = slices.Delete(next.Members, i, i+1)
			}
			for _, f := range rotate {
				ms, err := readMembers(f)
				if err != nil {
					return err
				}
				for _, m := range ms {
					i := slices.IndexFunc(next.Members, func(x config.Member) bool { return x.Origin == m.Origin })
					if i < 0 {
						return usagef(cmd, "--rotate %s: %s is not a member of version %d", f, m.Origin, cur.Version)
					}
					next.Members[i] = m
				}
			}
			for _, f := range add {
				ms, err := readMembers(f)
				if err != nil {
					return err
				}
				next.Members = append(next.Members, ms...)
			}
			if in < 2 {
				return usagef(cmd, "--in %d: an update takes effect at least 2 rounds after it is certified", in)
			}
			v, err := cur.Next(&next, max(st.Round+in, cur.Effective+1))
			if err != nil {
				return err
			}
			return writeOut(cmd, out, v.Text())
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&add, "add", nil, "a file with the [[member]] entry of a member to add ('meshd member' prints it)")
	f.StringArrayVar(&remove, "remove", nil, "the origin of a member to remove")
	f.StringArrayVar(&rotate, "rotate", nil, "a file with a member's new [[member]] entry (same origin; new key or addresses)")
	f.IntVar(&quorum, "quorum", 0, "the new quorum (0: floor(2n/3)+1)")
	f.Uint64Var(&in, "in", 12, "rounds from now until the update is in force; signing must be done by then minus 2")
	f.StringVar(&out, "out", "", "file to write the text to (default standard output)")
	return cmd
}

// newFederationSignCommand is 'meshctl federation sign': sign an update, hand it to nodes.
func newFederationSignCommand(opts *globalOptions) *cobra.Command {
	var keyPath, in, out string
	var submit []string
	cmd := &cobra.Command{
		Use:   "sign --key NODE.key [--in FILE] [--out FILE] [--submit URL,...]",
		Short: "Add a member's signature to a federation update and hand it to nodes",
		Long: `Sign adds the signature of a node key (a member's node.key, or the new key of
a member that joins or rotates) to an update's text or signed note (--in,
default standard input) and writes the signed note (--out, default standard
output). The key's origin is found in the update, or in the current version
at --portal. With --submit, the note is posted to each node in turn (put the
signer's own node first: a node refuses its member's signature on a second
text for one version); --token is the nodes' http.admin_token.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if keyPath == "" {
				return usagef(cmd, "--key is required")
			}
			msg, err := readIn(cmd, in)
			if err != nil {
				return err
			}
			signer, err := federationSigner(cmd, opts, keyPath, msg)
			if err != nil {
				return err
			}
			signed, err := config.SignFederationUpdate(msg, signer)
			if err != nil {
				return err
			}
			if err := writeOut(cmd, out, signed); err != nil {
				return err
			}
			return submitFederation(cmd, opts, submit, signed)
		},
	}
	f := cmd.Flags()
	f.StringVar(&keyPath, "key", "", "the signer's node key file (node.key of its node directory)")
	f.StringVar(&in, "in", "", "the update's text or signed note (default standard input)")
	f.StringVar(&out, "out", "", "file to write the signed note to (default standard output; may be --in)")
	f.StringSliceVar(&submit, "submit", nil, "node URLs to post the signed note to, in order")
	return cmd
}

func newFederationStatusCommand(opts *globalOptions) *cobra.Command {
	var nodes []string
	cmd := &cobra.Command{
		Use:   "status [--nodes URL,...]",
		Short: "Show each node's federation version and pending proposals",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(nodes) == 0 {
				nodes = []string{opts.portal}
			}
			type row struct {
				Node  string
				State *node.FederationState `json:",omitempty"`
				Error string                `json:",omitempty"`
			}
			var rows []row
			for _, u := range nodes {
				st, err := getFederationState(cmd.Context(), u)
				r := row{Node: u, State: st}
				if err != nil {
					r.Error = err.Error()
				}
				rows = append(rows, r)
			}
			return opts.emit(cmd, rows, func(w io.Writer) {
				for _, r := range rows {
					if r.State == nil {
						fmt.Fprintf(w, "%s  unreachable: %s\n", r.Node, r.Error)
						continue
					}
					s := r.State
					fmt.Fprintf(w, "%s  federation %s version %d (hash %.12s, effective round %d, %d members, quorum %d); in force now: %d; round %d; taking part: %v\n",
						r.Node, s.Name, s.Version, s.Hash, s.Effective, len(s.Members), s.Quorum, s.InForce, s.Round, s.Member)
					for _, p := range s.Pending {
						fmt.Fprintf(w, "    pending version %d (%x): signed by %s; new keys not signed: %s\n",
							p.Version, p.Hash[:6], strings.Join(p.Signers, ", "), orNone(p.Missing))
					}
				}
			})
		},
	}
	cmd.Flags().StringSliceVar(&nodes, "nodes", nil, "node URLs to ask (default --portal)")
	return cmd
}

// federationSigner is the signer of the node key at keyPath, named by its
// member's origin in the update msg, or else in the current version.
func federationSigner(cmd *cobra.Command, opts *globalOptions, keyPath string, msg []byte) (note.Signer, error) {
	key, err := config.LoadKey(keyPath)
	if err != nil {
		return nil, err
	}
	text := msg
	if t, _, ok := bytes.Cut(msg, []byte("\n\n")); ok {
		text = msg[:len(t)+1]
	}
	next, err := config.ParseFederationText(text)
	if err != nil {
		return nil, err
	}
	origin, ok := originOfKey(next.Members, key)
	if !ok {
		st, err := getFederationState(cmd.Context(), opts.portal)
		if err != nil {
			return nil, fmt.Errorf("the key is not in the update; looking in the current version: %w", err)
		}
		cur, err := config.ParseFederationText([]byte(st.Text))
		if err != nil {
			return nil, err
		}
		if origin, ok = originOfKey(cur.Members, key); !ok {
			return nil, fmt.Errorf("the key %s is neither a member's key in the update nor in version %d", keyPath, cur.Version)
		}
	}
	return merkle.NewSigner(origin, key)
}

// submitFederation posts the signed update to each node in turn, saying what each made of it.
func submitFederation(cmd *cobra.Command, opts *globalOptions, nodes []string, signed []byte) error {
	for _, u := range nodes {
		sub, err := postFederation(cmd.Context(), u, opts.token, signed)
		if err != nil {
			return fmt.Errorf("%s: %w", u, err)
		}
		state := map[bool]string{false: "pending", true: "accepted"}[sub.Accepted]
		fmt.Fprintf(cmd.ErrOrStderr(), "%s: version %d %s; signed by %s; new keys not signed: %s\n",
			u, sub.Proposal.Version, state, strings.Join(sub.Proposal.Signers, ", "), orNone(sub.Proposal.Missing))
	}
	return nil
}

// readMembers reads the [[member]] entries of a file.
func readMembers(path string) ([]config.Member, error) {
	var f struct {
		Member []config.Member `toml:"member"`
	}
	md, err := toml.DecodeFile(path, &f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if un := md.Undecoded(); len(un) > 0 {
		return nil, fmt.Errorf("%s: unknown setting %s", path, un[0])
	}
	if len(f.Member) == 0 {
		return nil, fmt.Errorf("%s: no [[member]] entry", path)
	}
	return f.Member, nil
}

// originOfKey finds the member whose key is key's.
func originOfKey(ms []config.Member, key ed25519.PrivateKey) (string, bool) {
	for _, m := range ms {
		if pub, err := m.PublicKey(); err == nil && pub.Equal(key.Public()) {
			return m.Origin, true
		}
	}
	return "", false
}

func readIn(cmd *cobra.Command, path string) ([]byte, error) {
	if path == "" || path == "-" {
		return io.ReadAll(io.LimitReader(cmd.InOrStdin(), config.MaxFederationNote+1))
	}
	return os.ReadFile(path)
}

func writeOut(cmd *cobra.Command, path string, b []byte) error {
	if path == "" || path == "-" {
		_, err := cmd.OutOrStdout().Write(b)
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

var federationHTTP = &http.Client{Timeout: 15 * time.Second}

// getFederationState reads a node's GET /federation.
func getFederationState(ctx context.Context, base string) (*node.FederationState, error) {
	return doFederation[node.FederationState](ctx, http.MethodGet, base, "", nil)
}

// postFederation posts a signed update to a node's POST /federation.
func postFederation(ctx context.Context, base, token string, signed []byte) (*node.FederationSubmission, error) {
	return doFederation[node.FederationSubmission](ctx, http.MethodPost, base, token, bytes.NewReader(signed))
}

// doFederation sends a request to a node's /federation (with payload, a
// signed note; with token, the node's admin token) and decodes its answer.
func doFederation[T any](ctx context.Context, method, base, token string, payload io.Reader) (*T, error) {
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(base, "/")+"/federation", payload)
	if err != nil {
		return nil, err
	}
	if payload != nil {
		req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := federationHTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return nil, fmt.Errorf("%s %s: %s: %s", req.Method, req.URL.Path, resp.Status, e.Error)
		}
		return nil, fmt.Errorf("%s %s: %s", req.Method, req.URL.Path, resp.Status)
	}
	var v T
	if err := json.Unmarshal(body, &v); err != nil {
		return nil, fmt.Errorf("%s %s: %w", req.Method, req.URL.Path, err)
	}
	return &v, nil
}

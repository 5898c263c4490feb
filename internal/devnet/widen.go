package devnet

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"taxlink/internal/config"
	"taxlink/internal/directory"
	"taxlink/internal/envelope"
	"taxlink/internal/lgdata"
	"taxlink/internal/pki"
)

// Widen makes the dev network in lay serve n local governments as
// recipients: with n at most the dev network's own recipients it uses the
// first n of them; with more it adds local governments from the embedded
// list of 1,788 (in code order) to the directory, spread round-robin over
// the network's recipient nodes, each with its own sealing key (a dev-only
// file: key in the node's directory, since 1,788 Argon2id-encrypted keys
// would take minutes to write), re-signs the directory with the dev
// directory key and rewrites the nodes' configurations and layout.json. It
// must run before any process of the network starts. lay.Recipients holds
// the n recipients afterwards.
func Widen(lay *Layout, n int) error {
	if n <= 0 {
		return errors.New("devnet: at least one recipient is needed")
	}
	if n <= len(lay.Recipients) {
		lay.Recipients = lay.Recipients[:n]
		return nil
	}
	lg, err := lgdata.Load()
	if err != nil {
		return fmt.Errorf("devnet: %w", err)
	}
	if n > lg.Len() {
		return fmt.Errorf("devnet: %d recipients asked, there are %d local governments", n, lg.Len())
	}
	dirPath := filepath.Join(lay.Dir, "directory", "directory.json")
	pemKey, err := os.ReadFile(filepath.Join(lay.Dir, "directory", "directory-key.pem"))
	if err != nil {
		return fmt.Errorf("devnet: %w", err)
	}
	pub, err := pki.ParsePublicKeyPEM(string(pemKey))
	if err != nil {
		return fmt.Errorf("devnet: directory key: %w", err)
	}
	doc, err := os.ReadFile(dirPath)
	if err != nil {
		return fmt.Errorf("devnet: %w", err)
	}
	d, err := directory.Verify(doc, pub, Environment)
	if err != nil {
		return fmt.Errorf("devnet: %w", err)
	}
	signer, err := ReadKey(lay, filepath.Join(lay.Dir, "hub", "directory-signing.key"))
	if err != nil {
		return fmt.Errorf("devnet: directory signing key: %w", err)
	}

	// The recipient nodes and their configurations.
	type host struct {
		info    *NodeInfo
		dirIdx  int // index in d.Nodes
		cfg     config.Node
		cfgPath string
	}
	var hosts []*host
	for i := range lay.Nodes {
		ni := &lay.Nodes[i]
		if ni.ID == NTAID {
			continue
		}
		h := &host{info: ni, cfgPath: ni.Config, dirIdx: -1}
		for j := range d.Nodes {
			if d.Nodes[j].ID == ni.ID {
				h.dirIdx = j
			}
		}
		if h.dirIdx < 0 {
			return fmt.Errorf("devnet: node %s is not in the directory", ni.ID)
		}
		b, err := os.ReadFile(ni.Config)
		if err != nil {
			return fmt.Errorf("devnet: %w", err)
		}
		if err := json.Unmarshal(b, &h.cfg); err != nil {
			return fmt.Errorf("devnet: %s: %w", ni.Config, err)
		}
		hosts = append(hosts, h)
	}
	if len(hosts) == 0 {
		return errors.New("devnet: the dev network has no recipient node")
	}

	have := map[string]bool{}
	for _, p := range d.Participants {
		have[p.ID] = true
	}
	added := 0
	for _, g := range lg.All() {
		if len(lay.Recipients) >= n {
			break
		}
		id := g.ParticipantID()
		if have[id] {
			continue
		}
		h := hosts[added%len(hosts)]
		added++
		priv, err := envelope.GenerateSealingKey(envelope.DefaultKEM)
		if err != nil {
			return fmt.Errorf("devnet: %w", err)
		}
		pubRaw, err := envelope.MarshalPublicKey(priv.PublicKey())
		if err != nil {
			return fmt.Errorf("devnet: %w", err)
		}
		privRaw, err := envelope.MarshalPrivateKey(priv)
		if err != nil {
			return fmt.Errorf("devnet: %w", err)
		}
		token := strings.ReplaceAll(id, ":", "-")
		file := "sealing-" + token + ".key"
		if err := os.WriteFile(filepath.Join(filepath.Dir(h.cfgPath), file), privRaw, 0o600); err != nil {
			return fmt.Errorf("devnet: %w", err)
		}
		keyID := token + "-1"
		kind := "municipality"
		if g.IsPrefecture() {
			kind = "prefecture"
		}
		d.Participants = append(d.Participants, directory.Participant{
			ID: id, Name: g.Name, Kind: kind,
			SealingKeys: []directory.SealingKey{{ID: keyID, KEM: envelope.DefaultKEM, Public: base64.StdEncoding.EncodeToString(pubRaw)}},
		})
		d.Nodes[h.dirIdx].Tenants = append(d.Nodes[h.dirIdx].Tenants, id)
		h.cfg.SealingKeys = append(h.cfg.SealingKeys, config.SealingKeyFile{Tenant: id, KeyID: keyID, KEM: envelope.DefaultKEM, File: "file:" + file})
		h.info.Tenants = append(h.info.Tenants, id)
		lay.Recipients = append(lay.Recipients, id)
		have[id] = true
	}
	d.Version++
	signed, err := directory.Sign(d, signer)
	if err != nil {
		return fmt.Errorf("devnet: %w", err)
	}
	if err := os.WriteFile(dirPath, signed, 0o644); err != nil {
		return fmt.Errorf("devnet: %w", err)
	}
	for _, h := range hosts {
		if err := writeJSON(h.cfgPath, h.cfg); err != nil {
			return err
		}
	}
	return writeJSON(filepath.Join(lay.Dir, "layout.json"), lay)
}

package daemon

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"taxlink/internal/envelope"
	"taxlink/internal/fsutil"
	"taxlink/internal/keystore"
	"taxlink/internal/node"
)

// Sealing keys made by a rotation in the console live in
// data_dir/sealing-keys: one encrypted key file each (the configuration's
// passphrase), a .pub file with the public key for the directory, and
// index.json listing them, which LoadNode reads after the configured keys.

const rotatedDir = "sealing-keys"

type rotatedKey struct {
	Tenant string `json:"tenant"`
	KeyID  string `json:"key_id"`
	KEM    uint16 `json:"kem"`
	File   string `json:"file"`
}

func readRotated(dataDir string) ([]rotatedKey, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, rotatedDir, "index.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var ks []rotatedKey
	if err := json.Unmarshal(b, &ks); err != nil {
		return nil, fmt.Errorf("%s/index.json: %w", rotatedDir, err)
	}
	return ks, nil
}

// loadRotated opens the sealing keys made by earlier rotations, but those
// of the erased tenants (whose key files are destroyed).
func loadRotated(dataDir string, env keystore.Env, erased []string) ([]node.SealingKey, error) {
	ks, err := readRotated(dataDir)
	if err != nil {
		return nil, err
	}
	var out []node.SealingKey
	for _, k := range ks {
		if slices.Contains(erased, k.Tenant) {
			continue
		}
		if strings.ContainsAny(k.File, `/\`) {
			return nil, fmt.Errorf("%s/index.json: bad file name %q", rotatedDir, k.File)
		}
		e := env
		e.SealingKEM = k.KEM
		priv, err := keystore.LoadSealingKey(keystore.Ref{Scheme: keystore.SchemeEnc, Path: filepath.Join(dataDir, rotatedDir, k.File)}, e)
		if err != nil {
			return nil, fmt.Errorf("rotated sealing key %s of %s: %w", k.KeyID, k.Tenant, err)
		}
		out = append(out, node.SealingKey{Tenant: k.Tenant, KeyID: k.KeyID, Key: priv})
	}
	return out, nil
}

// rotateSealingKey makes a new sealing key for tenant, stores it encrypted,
// puts it in use and returns its ID and the path of its public key, which
// the 機構 publishes in the directory (with a validity start) before
// senders seal to it.
func rotateSealingKey(dataDir string, env keystore.Env, n *node.Node, tenant string, now time.Time) (string, string, error) {
	dir := filepath.Join(dataDir, rotatedDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", err
	}
	priv, err := envelope.GenerateSealingKey(envelope.DefaultKEM)
	if err != nil {
		return "", "", err
	}
	pub, err := envelope.MarshalPublicKey(priv.PublicKey())
	if err != nil {
		return "", "", err
	}
	token := strings.ReplaceAll(tenant, ":", "-")
	keyID := fmt.Sprintf("%s-%s", token, now.UTC().Format("20060102T150405"))
	pass, err := env.Passphrase.Passphrase("the sealing key of " + tenant)
	if err != nil {
		return "", "", fmt.Errorf("passphrase: %w", err)
	}
	defer clear(pass)
	file := keyID + ".key"
	if err := keystore.WriteEncrypted(filepath.Join(dir, file), priv, pass, keystore.DefaultParams()); err != nil {
		return "", "", err
	}
	pubPath := filepath.Join(dir, keyID+".pub")
	if err := fsutil.WriteFileAtomic(pubPath, []byte(base64.StdEncoding.EncodeToString(pub)+"\n"), 0o644); err != nil {
		return "", "", err
	}
	ks, err := readRotated(dataDir)
	if err != nil {
		return "", "", err
	}
	ks = append(ks, rotatedKey{Tenant: tenant, KeyID: keyID, KEM: envelope.DefaultKEM, File: file})
	b, err := json.MarshalIndent(ks, "", "  ")
	if err != nil {
		return "", "", err
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(dir, "index.json"), b, 0o600); err != nil {
		return "", "", err
	}
	if err := n.AddSealingKey(node.SealingKey{Tenant: tenant, KeyID: keyID, Key: priv}); err != nil {
		return "", "", err
	}
	return keyID, pubPath, nil
}

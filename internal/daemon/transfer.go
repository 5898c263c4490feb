package daemon

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"taxlink/internal/config"
	"taxlink/internal/envelope"
	"taxlink/internal/keystore"
	"taxlink/internal/transfer"
)

// TransferOut writes the bundle of tenant's records at the node configured
// at path into dir, re-sealed to the tenant's new sealing key (pubFile:
// base64 of the public key, as `taxlink node` rotations write it; keyID
// names it), signed by this node. See package transfer.
func TransferOut(ctx context.Context, path, tenant, pubFile, keyID, dir string, log *slog.Logger) (*transfer.Manifest, error) {
	l, err := LoadNode(path, log)
	if err != nil {
		return nil, err
	}
	defer l.Close()
	b, err := os.ReadFile(pubFile)
	if err != nil {
		return nil, err
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("%s: not base64: %w", pubFile, err)
	}
	pub, err := envelope.ParsePublicKey(envelope.DefaultKEM, raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", pubFile, err)
	}
	return transfer.Export(ctx, l.Store, l.Node.Open, tenant, pub, keyID, l.Config.ID, l.signer, dir)
}

// TransferIn imports a bundle made by node from into the node configured
// at path, opening every record with the tenant's sealing key keyID from
// that configuration, and writes the signed verification to
// dir/verification.json. It does not need the directory to list the
// tenant at this node yet: the 機構 moves the tenant once the verification
// is in.
func TransferIn(ctx context.Context, path, tenant, from, dir string, log *slog.Logger) (*transfer.Verification, error) {
	c, err := config.LoadNode(path)
	if err != nil {
		return nil, err
	}
	cm, err := loadCommon(&c.Common, log)
	if err != nil {
		return nil, err
	}
	defer cm.close()
	fromNode, err := cm.dir.Get().Node(from)
	if err != nil {
		return nil, fmt.Errorf("the old node %s: %w", from, err)
	}
	bundleKeyID, err := manifestKeyID(dir)
	if err != nil {
		return nil, err
	}
	var sk *config.SealingKeyFile
	for i, k := range c.SealingKeys {
		if k.Tenant == tenant && k.KeyID == bundleKeyID {
			sk = &c.SealingKeys[i]
		}
	}
	if sk == nil {
		return nil, fmt.Errorf("%s has no sealing key %q of %s, to which the bundle is sealed", path, bundleKeyID, tenant)
	}
	ref, err := keystore.ParseRef(sk.File)
	if err != nil {
		return nil, err
	}
	env := cm.env
	env.SealingKEM = sk.KEM
	priv, err := keystore.LoadSealingKey(ref, env)
	if err != nil {
		return nil, err
	}
	signer, sc, err := loadSigner(c.SigningKey, cm.env)
	if err != nil {
		return nil, err
	}
	cm.addCloser(sc)
	st, err := openNodeStore(c)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	v, signed, err := transfer.Import(ctx, dir, fromNode.Key(), tenant, priv, st, c.ID, signer)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "verification.json"), signed, 0o644); err != nil {
		return nil, err
	}
	return v, nil
}

// manifestKeyID reads the key ID a bundle is sealed to.
func manifestKeyID(dir string) (string, error) {
	var m struct {
		KeyID string `json:"key_id"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		return "", err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return "", fmt.Errorf("manifest.json: %w", err)
	}
	return m.KeyID, nil
}

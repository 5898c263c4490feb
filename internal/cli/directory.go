package cli

import (
	"bytes"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"taxlink/internal/config"
	"taxlink/internal/directory"
	"taxlink/internal/keystore"
	"taxlink/internal/pki"
)

func directoryCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "directory",
		Short: "Show, compare, sign and publish the signed network directory",
	}
	c.AddCommand(dirShowCmd(), dirDiffCmd(), dirSignCmd(), dirPublishCmd())
	return c
}

// dirContext is what a directory command needs from a hub or node
// configuration: the directory file, the key that signs it, the environment.
type dirContext struct {
	path string
	key  *ecdsa.PublicKey
	env  string
}

func loadDirContext(cfgPath string) (*dirContext, error) {
	var common config.Common
	if h, err := config.LoadHub(cfgPath); err == nil {
		common = h.Common
	} else if n, nerr := config.LoadNode(cfgPath); nerr == nil {
		common = n.Common
	} else {
		return nil, fmt.Errorf("%s is neither a valid hub nor node configuration: %w", cfgPath, errors.Join(err, nerr))
	}
	pem, err := os.ReadFile(common.DirectoryKey)
	if err != nil {
		return nil, err
	}
	k, err := pki.ParsePublicKeyPEM(string(pem))
	if err != nil {
		return nil, fmt.Errorf("directory_key: %w", err)
	}
	return &dirContext{path: common.Directory, key: k, env: common.Environment}, nil
}

func (dc *dirContext) verify(file string) (*directory.Directory, error) {
	doc, err := readLimited(file, directory.MaxSize)
	if err != nil {
		return nil, err
	}
	return directory.Verify(doc, dc.key, dc.env)
}

func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return b, nil
}

func dirShowCmd() *cobra.Command {
	var cfg string
	var body bool
	c := &cobra.Command{
		Use:   "show --config CONFIG [SIGNED]",
		Short: "Verify a signed directory (default: the one in force for CONFIG) and summarize it",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dc, err := loadDirContext(cfg)
			if err != nil {
				return err
			}
			file := dc.path
			if len(args) == 1 {
				file = args[0]
			}
			d, err := dc.verify(file)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if body {
				// The body, for editing and `directory sign`.
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(d)
			}
			fmt.Fprintf(out, "directory version %d, environment %s, issued %s — signature verified\n\n", d.Version, d.Environment, d.Issued.UTC().Format("2006-01-02 15:04Z"))
			tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "hub\t%s\t%s\t\n", d.Hub.ID, d.Hub.Endpoint)
			for _, n := range d.Nodes {
				op := ""
				if n.Operator != "" {
					op = "operated by " + n.Operator
				}
				fmt.Fprintf(tw, "node\t%s\t%s\t%s %s\n", n.ID, n.Endpoint, n.Name, op)
				for _, t := range n.Tenants {
					p, _ := d.Participant(t)
					state := ""
					if p.Suspended {
						state = "SUSPENDED"
					}
					keys := ""
					for _, k := range p.SealingKeys {
						keys += k.ID + " "
					}
					fmt.Fprintf(tw, "  tenant\t%s\t%s\tkeys: %s %s\n", t, p.Name, keys, state)
				}
			}
			for _, p := range d.Participants {
				if c := p.Certification; c != nil {
					fmt.Fprintf(tw, "certified\t%s\t%s – %s\tlast audit %s\n", p.ID, c.From.Format("2006-01-02"), c.Until.Format("2006-01-02"), c.LastAudit.Format("2006-01-02"))
				}
			}
			for _, t := range d.Types {
				fmt.Fprintf(tw, "type\t%s\t%v\tmax %d bytes\n", t.Name, t.ContentTypes, t.MaxSize)
			}
			for _, r := range d.Policy {
				fmt.Fprintf(tw, "allow\t%s → %v\t%v\t\n", r.From, r.To, r.Types)
			}
			return tw.Flush()
		},
	}
	c.Flags().StringVar(&cfg, "config", "", "a hub or node configuration (gives the directory key and environment)")
	c.Flags().BoolVar(&body, "body", false, "print the directory body as JSON, for editing and `directory sign`")
	_ = c.MarkFlagRequired("config")
	return c
}

func dirDiffCmd() *cobra.Command {
	var cfg string
	c := &cobra.Command{
		Use:   "diff --config CONFIG OLD NEW",
		Short: "Verify two signed directories and list what changed",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			dc, err := loadDirContext(cfg)
			if err != nil {
				return err
			}
			a, err := dc.verify(args[0])
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			b, err := dc.verify(args[1])
			if err != nil {
				return fmt.Errorf("%s: %w", args[1], err)
			}
			changes := directory.Diff(a, b)
			for _, ch := range changes {
				fmt.Fprintln(cmd.OutOrStdout(), ch)
			}
			if len(changes) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "no differences")
			}
			return nil
		},
	}
	c.Flags().StringVar(&cfg, "config", "", "a hub or node configuration (gives the directory key and environment)")
	_ = c.MarkFlagRequired("config")
	return c
}

func dirSignCmd() *cobra.Command {
	var keyRef, passFile, module, in, out string
	c := &cobra.Command{
		Use:   "sign --key KEYREF --in BODY.json --out SIGNED.json",
		Short: "Validate a directory body and sign it with the directory key",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ref, err := keystore.ParseRef(keyRef)
			if err != nil {
				return err
			}
			env := keystore.DefaultEnv()
			if passFile != "" {
				env.Passphrase = keystore.PassphraseFromFile(passFile)
			}
			env.Token.Module = module
			key, closer, err := keystore.LoadSigner(ref, env)
			if err != nil {
				return err
			}
			defer closer.Close()
			b, err := readLimited(in, directory.MaxSize)
			if err != nil {
				return err
			}
			var d directory.Directory
			dec := json.NewDecoder(bytes.NewReader(b))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&d); err != nil {
				return fmt.Errorf("%s: %w", in, err)
			}
			doc, err := directory.Sign(&d, key)
			if err != nil {
				return err
			}
			if err := os.WriteFile(out, doc, 0o644); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "signed directory version %d (%s) → %s\n", d.Version, d.Environment, out)
			return nil
		},
	}
	c.Flags().StringVar(&keyRef, "key", "", "the directory signing key: enc:PATH, pkcs11:token=…;object=… or (dev) file:PATH")
	c.Flags().StringVar(&passFile, "passphrase-file", "", "file holding the passphrase of an enc: key (default: $TAXLINK_KEY_PASSPHRASE)")
	c.Flags().StringVar(&module, "pkcs11-module", "", "PKCS#11 module for a pkcs11: key (PIN from $TAXLINK_PKCS11_PIN)")
	c.Flags().StringVar(&in, "in", "", "the directory body (JSON)")
	c.Flags().StringVar(&out, "out", "", "where to write the signed directory")
	for _, f := range []string{"key", "in", "out"} {
		_ = c.MarkFlagRequired(f)
	}
	return c
}

func dirPublishCmd() *cobra.Command {
	var cfg string
	c := &cobra.Command{
		Use:   "publish --config HUBCONFIG SIGNED",
		Short: "Put a newer signed directory in force at the hub; nodes fetch it from there",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dc, err := loadDirContext(cfg)
			if err != nil {
				return err
			}
			h, err := directory.NewHolder(dc.path, dc.key, dc.env)
			if err != nil {
				return err
			}
			doc, err := readLimited(args[0], directory.MaxSize)
			if err != nil {
				return err
			}
			old := h.Get()
			changed, err := h.Update(doc)
			if err != nil {
				return err
			}
			if !changed {
				fmt.Fprintf(cmd.OutOrStdout(), "version %d is already in force\n", old.Version)
				return nil
			}
			for _, ch := range directory.Diff(old, h.Get()) {
				fmt.Fprintln(cmd.OutOrStdout(), ch)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "published version %d; the running hub puts it in force within seconds\n", h.Get().Version)
			return nil
		},
	}
	c.Flags().StringVar(&cfg, "config", "", "the hub's configuration")
	_ = c.MarkFlagRequired("config")
	return c
}

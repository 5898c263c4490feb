package cli

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"

	"taxlink/internal/audit"
	"taxlink/internal/config"
	"taxlink/internal/daemon"
	"taxlink/internal/devnet"
	"taxlink/internal/directory"
	"taxlink/internal/ledger"
	"taxlink/internal/notekey"
	"taxlink/internal/pki"
	"taxlink/internal/receipt"
	"taxlink/internal/store"
)

// The audit commands check the tamper-evident logs (package ledger) from
// outside the processes that write them: every log under a directory, a
// receipt's inclusion proof exported to a file, and backups. Each prints a
// table and, as its last line, one JSON summary; the exit status is 1 on
// any failure, with a message naming the file, record and byte offset.

func auditCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "audit",
		Short: "Verify, prove, back up and benchmark the ledger and the audit logs",
		Long: `Check the hub's ledger and the audit logs of the hub and the nodes from
outside the processes that write them, read only:

  audit verify --data DIR           every log under DIR (a data directory, or the
                                    tree kept by 'taxlink dev --keep DIR')
  audit prove --config NODE --id ID export the inclusion proof of a receipt
  audit verify --bundle FILE ...    check an exported proof offline
  audit backup --data DIR --to DIR  copy every log under DIR
  audit backup-check --live DIR --backup DIR
  audit bench --entries N --dir DIR

The keys come from the signed directory: --config (the directory named by a
hub's or node's configuration), --directory and --directory-key, or, for
--data, a directory/ found in DIR or above it (the dev tree).`,
		Args: cobra.NoArgs,
	}
	c.AddCommand(auditVerifyCmd(), auditProveCmd(), auditBackupCmd(), auditBackupCheckCmd(), auditBenchCmd())
	return c
}

// ---------------------------------------------------------------------------
// Trust: the signed directory that publishes the hub's and the nodes' keys.

// trustFlags are the flags that say where the directory comes from.
type trustFlags struct {
	config, directory, directoryKey string
}

func (t *trustFlags) register(c *cobra.Command) {
	c.Flags().StringVar(&t.config, "config", "", "a hub's or node's configuration `FILE`: its directory and directory key")
	c.Flags().StringVar(&t.directory, "directory", "", "signed directory `FILE` that publishes the keys")
	c.Flags().StringVar(&t.directoryKey, "directory-key", "", "PEM `FILE` of the public key that signs the directory")
}

// trust is a verified directory and where it came from.
type trust struct {
	dir    *directory.Directory
	source string
	// inside is set when the directory was found inside the data being
	// checked, so that whoever could change the logs could change it too.
	inside bool
	// role and dataDir are set with --config.
	role    string
	dataDir string
	id      string
}

// load returns the directory to verify with. search, if not empty, is
// where to look for a directory/ (in it and above it) when no flag names
// one.
func (t trustFlags) load(search string) (*trust, error) {
	switch {
	case t.config != "" && (t.directory != "" || t.directoryKey != ""):
		return nil, errors.New("give either --config or --directory and --directory-key, not both")
	case t.config != "":
		role, c, err := loadAnyConfig(t.config)
		if err != nil {
			return nil, err
		}
		d, err := loadDirectory(c.Directory, c.DirectoryKey, c.Environment)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", t.config, err)
		}
		return &trust{dir: d, source: fmt.Sprintf("directory %s named by %s, verified with %s", c.Directory, t.config, c.DirectoryKey),
			role: role, dataDir: c.DataDir, id: c.ID}, nil
	case t.directory != "" || t.directoryKey != "":
		if t.directory == "" || t.directoryKey == "" {
			return nil, errors.New("--directory and --directory-key go together")
		}
		d, err := loadDirectory(t.directory, t.directoryKey, "")
		if err != nil {
			return nil, err
		}
		return &trust{dir: d, source: fmt.Sprintf("directory %s verified with %s", t.directory, t.directoryKey)}, nil
	case search != "":
		doc, key, ok := findDirectory(search)
		if !ok {
			return nil, fmt.Errorf("no directory/directory.json and directory/directory-key.pem in %s or above it: give --config, or --directory and --directory-key", search)
		}
		d, err := loadDirectory(doc, key, "")
		if err != nil {
			return nil, err
		}
		return &trust{dir: d, source: fmt.Sprintf("directory %s verified with %s", doc, key), inside: true}, nil
	default:
		return nil, errors.New("give --config, or --directory and --directory-key")
	}
}

// loadAnyConfig loads a hub's or a node's configuration, whichever path is.
func loadAnyConfig(path string) (string, *config.Common, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", nil, err
	}
	var probe struct {
		Role string `json:"role"`
	}
	_ = json.Unmarshal(b, &probe)
	switch probe.Role {
	case "hub":
		c, err := config.LoadHub(path)
		if err != nil {
			return "", nil, err
		}
		return "hub", &c.Common, nil
	case "node":
		c, err := config.LoadNode(path)
		if err != nil {
			return "", nil, err
		}
		return "node", &c.Common, nil
	default:
		return "", nil, fmt.Errorf("%s: role: expected \"hub\" or \"node\", got %q", path, probe.Role)
	}
}

// loadDirectory reads the signed directory at docPath and verifies it with
// the PEM key at keyPath (and, if env is set, that it is for env).
func loadDirectory(docPath, keyPath, env string) (*directory.Directory, error) {
	pemBytes, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("directory key: %w", err)
	}
	key, err := pki.ParsePublicKeyPEM(string(pemBytes))
	if err != nil {
		return nil, fmt.Errorf("directory key %s: %w", keyPath, err)
	}
	doc, err := os.ReadFile(docPath)
	if err != nil {
		return nil, fmt.Errorf("directory: %w", err)
	}
	d, err := directory.Verify(doc, key, env)
	if err != nil {
		return nil, fmt.Errorf("directory %s (checked with the key in %s): %w", docPath, keyPath, err)
	}
	return d, nil
}

// findDirectory looks for directory/directory.json and
// directory/directory-key.pem in start and each directory above it.
func findDirectory(start string) (doc, key string, ok bool) {
	d, err := filepath.Abs(start)
	if err != nil {
		return "", "", false
	}
	for {
		doc, key = filepath.Join(d, "directory", "directory.json"), filepath.Join(d, "directory", "directory-key.pem")
		if regularFile(doc) && regularFile(key) {
			return doc, key, true
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", "", false
		}
		d = parent
	}
}

func regularFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

func dirExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// logOrigin is the origin of a log kept by a taxlink process (as the
// daemon opens them): "taxlink/<environment>/<participant ID>/<kind>",
// kind "ledger" (the hub's) or "audit".
func logOrigin(env, id, kind string) string { return "taxlink/" + env + "/" + id + "/" + kind }

// signerOf returns the verifier of the key that signs the checkpoints of
// the log with this origin: the key the directory publishes for the
// participant the origin names.
func signerOf(d *directory.Directory, origin string) (note.Verifier, string, error) {
	parts := strings.Split(origin, "/")
	if len(parts) != 4 || parts[0] != "taxlink" {
		return nil, "", fmt.Errorf("origin %q is not of the form taxlink/ENVIRONMENT/ID/KIND", origin)
	}
	env, id := parts[1], parts[2]
	if env != d.Environment {
		return nil, "", fmt.Errorf("the log is of environment %q but the directory of %q", env, d.Environment)
	}
	var pub *ecdsa.PublicKey
	if id == d.Hub.ID {
		pub = d.HubKey()
	} else if n, err := d.Node(id); err == nil {
		pub = n.Key()
	} else {
		return nil, "", fmt.Errorf("the log is signed by %s, which is neither the hub nor a node of directory version %d", id, d.Version)
	}
	v, err := notekey.NewVerifier(id, pub)
	if err != nil {
		return nil, "", err
	}
	return v, parts[3], nil
}

// hubVerifier returns the verifier of the hub's key.
func hubVerifier(d *directory.Directory) (note.Verifier, error) {
	return notekey.NewVerifier(d.Hub.ID, d.HubKey())
}

// ---------------------------------------------------------------------------
// Finding logs.

// Names of the files of a log directory (docs/ledger.md §2).
var ledgerFiles = []string{"entries", "hashes", "checkpoints", "head"}

const witnessFile = "hub-checkpoint"

// findLogs walks root and returns, relative to root and sorted, every log
// directory (one holding a file of a log that starts with the ledger's
// magic, or one named ledger or audit holding such a file) and every
// node's witness file.
func findLogs(root string) (logs, witnesses []string, err error) {
	seen := map[string]bool{}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		name := d.Name()
		if name == witnessFile {
			witnesses = append(witnesses, rel)
			return nil
		}
		if !slices.Contains(ledgerFiles, name) {
			return nil
		}
		dir := filepath.Dir(rel)
		if seen[dir] {
			return nil
		}
		base := filepath.Base(filepath.Dir(p))
		if base == "ledger" || base == "audit" || hasMagic(p) {
			seen[dir] = true
			logs = append(logs, dir)
		}
		return nil
	})
	slices.Sort(logs)
	slices.Sort(witnesses)
	return logs, witnesses, err
}

func hasMagic(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var b [8]byte
	_, err = io.ReadFull(f, b[:])
	return err == nil && string(b[:]) == "TXLEDGER"
}

// readOrigin returns the origin recorded in the headers of the log in dir
// (docs/ledger.md §3): that of the first file whose header is intact.
func readOrigin(dir string) (string, bool) {
	const fixed = 8 + 12 + 4 + 16 + 2
	for _, name := range ledgerFiles {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			continue
		}
		b := make([]byte, fixed+255+4)
		n, _ := io.ReadFull(f, b)
		f.Close()
		b = b[:n]
		if len(b) < fixed || string(b[:8]) != "TXLEDGER" {
			continue
		}
		olen := int(binary.BigEndian.Uint16(b[fixed-2 : fixed]))
		if len(b) < fixed+olen+4 {
			continue
		}
		if crc32.Checksum(b[:fixed+olen], crc32.MakeTable(crc32.Castagnoli)) != binary.BigEndian.Uint32(b[fixed+olen:]) {
			continue
		}
		return string(b[fixed : fixed+olen]), true
	}
	return "", false
}

// expectedLogs returns the logs that must exist under root, relative to
// root: a hub's ledger and audit log once its data directory exists. The
// hub is known from --config or from the layout of a dev tree.
func expectedLogs(root string, tr *trust) map[string]string {
	out := map[string]string{}
	hubData := func(dataDir, why string) {
		if !dirExists(dataDir) {
			return
		}
		rel, err := filepath.Rel(root, dataDir)
		if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			return
		}
		for _, kind := range []string{"ledger", "audit"} {
			out[filepath.Join(rel, kind)] = why
		}
	}
	if tr.role == "hub" && tr.dataDir != "" {
		hubData(tr.dataDir, "the hub's data directory per "+tr.source)
	}
	if lay, err := devnet.ReadLayout(root); err == nil {
		// The layout holds absolute paths of where the tree was written;
		// the tree may have been moved or copied since.
		if rel, err := filepath.Rel(lay.Dir, lay.HubConfig); err == nil && !strings.HasPrefix(rel, "..") {
			cfg := filepath.Join(root, rel)
			var c struct {
				DataDir string `json:"data_dir"`
			}
			if b, err := os.ReadFile(cfg); err == nil && json.Unmarshal(b, &c) == nil && c.DataDir != "" {
				dd := c.DataDir
				if !filepath.IsAbs(dd) {
					dd = filepath.Join(filepath.Dir(cfg), dd)
				}
				hubData(dd, "the hub's data directory per "+cfg)
			}
		}
	}
	return out
}

// ---------------------------------------------------------------------------
// audit verify --data

// problemJSON is a Problem placed: the log directory and the file's path.
type problemJSON struct {
	Log     string `json:"log"`
	File    string `json:"file"`
	Kind    string `json:"kind"`
	Index   int64  `json:"index"`
	Offset  int64  `json:"offset"`
	Detail  string `json:"detail"`
	Message string `json:"message"`
}

func placed(dir string, p ledger.Problem) problemJSON {
	return problemJSON{
		Log: dir, File: filepath.Join(dir, p.File), Kind: string(p.Kind), Index: p.Index, Offset: p.Offset, Detail: p.Detail,
		Message: filepath.Join(dir, p.String()),
	}
}

func looseProblem(dir, file, kind, detail string) problemJSON {
	return problemJSON{Log: dir, File: file, Kind: kind, Index: -1, Offset: -1, Detail: detail, Message: file + ": " + detail}
}

// logResult is what was found about one log.
type logResult struct {
	Rel, Path   string
	Origin      string
	Signer      string
	Entries     int64
	Checkpoints int
	Latest      ledger.Checkpoint
	Problems    []problemJSON
	Recoverable []string
	verifier    note.Verifier // the signer's key, nil if unknown
	intact      bool          // verified without a problem on its own
}

// verifyLog checks the log in path with the key the directory publishes
// for its signer; an audit log's entries must moreover all be audit
// events.
func verifyLog(root, rel string, d *directory.Directory) logResult {
	path := filepath.Join(root, rel)
	res := logResult{Rel: rel, Path: path}
	verifiers, err := notekey.FromDirectory(d)
	if err != nil {
		res.Problems = append(res.Problems, looseProblem(path, path, "key", err.Error()))
		return res
	}
	kind := ""
	if origin, ok := readOrigin(path); ok {
		res.Origin = origin
		v, k, err := signerOf(d, origin)
		if err != nil {
			res.Problems = append(res.Problems, looseProblem(path, filepath.Join(path, "entries"), "key", err.Error()))
		} else {
			res.verifier, res.Signer, kind = v, v.Name(), k
			verifiers = note.VerifierList(v)
		}
	}
	var rep ledger.Report
	if kind == "audit" {
		rep, err = audit.Verify(path, ledger.Options{Origin: res.Origin, Verifier: res.verifier})
	} else {
		rep, err = ledger.VerifyDir(path, verifiers)
	}
	if rep.Origin != "" {
		res.Origin = rep.Origin
	}
	res.Entries, res.Checkpoints, res.Latest = rep.Entries, rep.Checkpoints, rep.Latest
	for _, p := range rep.Problems {
		res.Problems = append(res.Problems, placed(path, p))
	}
	for _, p := range rep.Recoverable {
		res.Recoverable = append(res.Recoverable, fmt.Sprintf("%s (%s, Open repairs it)", filepath.Join(path, p.String()), p.Kind))
	}
	if err != nil && len(rep.Problems) == 0 {
		k := "error"
		if kind == "audit" && errors.Is(err, ledger.ErrCorrupt) {
			k = "event"
		}
		res.Problems = append(res.Problems, looseProblem(path, filepath.Join(path, "entries"), k, err.Error()))
	}
	res.intact = len(res.Problems) == 0 && res.verifier != nil
	return res
}

// witnessResult is what was found about one node's witness file.
type witnessResult struct {
	Rel, Path string
	Size      int64
	Status    string
}

// checkWitness checks a node's witness file: a checkpoint signed by the
// hub, which every copy of the hub's ledger under root must agree with (same
// root at that size), and which the live ledger must still extend. A
// ledger that no longer does was rolled back or rewritten: the problem is
// added to that log's result. A log under a directory whose name contains
// "backup" is a copy and may lag behind the witness.
func checkWitness(root, rel string, d *directory.Directory, logs []logResult) (witnessResult, *problemJSON) {
	path := filepath.Join(root, rel)
	w := witnessResult{Rel: rel, Path: path, Size: -1}
	fail := func(detail string) (witnessResult, *problemJSON) {
		p := looseProblem(path, path, "witness", detail)
		w.Status = "FAILED: " + detail
		return w, &p
	}
	hv, err := hubVerifier(d)
	if err != nil {
		return fail(err.Error())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return fail(err.Error())
	}
	cp, err := ledger.ParseCheckpoint(data, note.VerifierList(hv))
	if err != nil {
		return fail(fmt.Sprintf("not a checkpoint signed by the hub %s: %v", d.Hub.ID, err))
	}
	w.Size = cp.Size
	var status []string
	for i := range logs {
		l := &logs[i]
		if l.Origin != cp.Origin {
			continue
		}
		if !l.intact {
			status = append(status, l.Rel+": not compared (corrupt)")
			continue
		}
		kind, detail, err := compareWitness(l, cp, path)
		switch {
		case err != nil:
			status = append(status, l.Rel+": not compared: "+err.Error())
		case kind == "rollback" && isCopyPath(l.Rel):
			status = append(status, fmt.Sprintf("%s: a copy, %d entries behind", l.Rel, cp.Size-l.Entries))
		case kind != "":
			l.Problems = append(l.Problems, looseProblem(l.Path, filepath.Join(l.Path, "entries"), kind, detail))
			status = append(status, l.Rel+": FAILED ("+kind+")")
		default:
			status = append(status, l.Rel+": consistent")
		}
	}
	if len(status) == 0 {
		w.Status = "signed by the hub; no hub ledger under the directory checked to compare with"
	} else {
		w.Status = strings.Join(status, "; ")
	}
	return w, nil
}

// compareWitness compares the witness checkpoint cp (from the file at
// path) with the log l: the log must hold at least cp.Size entries
// ("rollback") whose tree hash is cp's root ("fork").
func compareWitness(l *logResult, cp ledger.Checkpoint, path string) (kind, detail string, err error) {
	lg, err := ledger.Open(l.Path, ledger.Options{Origin: l.Origin, Verifier: l.verifier})
	if err != nil {
		return "", "", err
	}
	defer lg.Close()
	if lg.Size() < cp.Size {
		return "rollback", fmt.Sprintf("holds %d entries, but the node's witness %s holds the hub's signed checkpoint of size %d: entries were removed (log rolled back or replaced)", lg.Size(), path, cp.Size), nil
	}
	h, err := lg.TreeHash(cp.Size)
	if err != nil {
		return "", "", err
	}
	if h != cp.Hash {
		return "fork", fmt.Sprintf("its first %d entries hash to %s, but the node's witness %s holds the hub's signed checkpoint of that size with root %s: entries were changed (log rewritten)", cp.Size, h, path, cp.Hash), nil
	}
	return "", "", nil
}

// isCopyPath reports whether a log's path says it is a backup copy.
func isCopyPath(rel string) bool {
	for _, e := range strings.Split(filepath.ToSlash(rel), "/") {
		if strings.Contains(strings.ToLower(e), "backup") {
			return true
		}
	}
	return false
}

func auditVerifyCmd() *cobra.Command {
	var (
		tf     trustFlags
		data   string
		bundle string
	)
	c := &cobra.Command{
		Use:   "verify (--data DIR | --bundle FILE) [--config CFG | --directory FILE --directory-key PEM]",
		Short: "Verify every log under a directory, or an exported inclusion proof",
		Long: `With --data DIR, find every log under DIR (a hub's or a node's data directory,
or the whole tree kept by 'taxlink dev --keep DIR') and verify each offline,
read only: framing and CRC of every record, the Merkle tree against the stored
hashes, every checkpoint's signature with the key the directory publishes for
the log's signer, the head, and for audit logs that every entry is an audit
event. A node's witness file (hub-checkpoint) must be extended by the hub's
ledger when that is under DIR too. Exit status 1, naming the file, record and
byte offset, when any byte of a log was changed, removed or reordered.

With --bundle FILE (written by 'taxlink audit prove'), check offline that the
receipt in FILE is in the hub's ledger: the checkpoint's signature with the
hub's key, the inclusion proof, that the proven entry is the receipt's, and
the receipt's signature.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case data != "" && bundle != "":
				return errors.New("give --data or --bundle, not both")
			case bundle != "":
				if tf.config == "" && tf.directory == "" {
					return errors.New("--bundle needs the directory to trust: --directory FILE --directory-key PEM, or --config")
				}
				tr, err := tf.load("")
				if err != nil {
					return err
				}
				return verifyBundleFile(cmd.OutOrStdout(), tr, bundle)
			case data == "" && tf.config != "":
				tr, err := tf.load("")
				if err != nil {
					return err
				}
				return verifyData(cmd.OutOrStdout(), tr, tr.dataDir)
			case data == "":
				return errors.New("give --data DIR or --bundle FILE")
			}
			if !dirExists(data) {
				return fmt.Errorf("--data %s: not a directory", data)
			}
			tr, err := tf.load(data)
			if err != nil {
				return err
			}
			return verifyData(cmd.OutOrStdout(), tr, data)
		},
	}
	c.Flags().StringVar(&data, "data", "", "verify every log under `DIR` (default with --config: its data directory)")
	c.Flags().StringVar(&bundle, "bundle", "", "verify the proof `FILE` written by 'audit prove'")
	tf.register(c)
	return c
}

// verifyData is `audit verify --data root`.
func verifyData(out io.Writer, tr *trust, root string) error {
	rels, wits, err := findLogs(root)
	if err != nil {
		return fmt.Errorf("--data %s: %w", root, err)
	}
	fmt.Fprintf(out, "trust: %s (version %d, environment %s)\n", tr.source, tr.dir.Version, tr.dir.Environment)
	if tr.inside {
		fmt.Fprintln(out, "trust: WARNING: the directory key was found inside the tree being checked; for a real audit give --directory-key from an independent source")
	}
	var logs []logResult
	for _, rel := range rels {
		logs = append(logs, verifyLog(root, rel, tr.dir))
	}
	for rel, why := range expectedLogs(root, tr) {
		if !slices.Contains(rels, rel) {
			p := filepath.Join(root, rel)
			logs = append(logs, logResult{Rel: rel, Path: p, Problems: []problemJSON{looseProblem(p, p, "missing", "the log is missing: expected in "+why)}})
		}
	}
	slices.SortFunc(logs, func(a, b logResult) int { return strings.Compare(a.Rel, b.Rel) })
	var witnesses []witnessResult
	var witnessProblems []problemJSON
	for _, rel := range wits {
		w, p := checkWitness(root, rel, tr.dir, logs)
		witnesses = append(witnesses, w)
		if p != nil {
			witnessProblems = append(witnessProblems, *p)
		}
	}

	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LOG\tORIGIN\tENTRIES\tCHECKPOINTS\tSTATUS")
	problems := []problemJSON{}
	okN, failedN := 0, 0
	for _, l := range logs {
		status := "OK"
		if len(l.Problems) > 0 {
			failedN++
			status = fmt.Sprintf("FAILED (%d problems)", len(l.Problems))
			if len(l.Problems) == 1 {
				status = "FAILED (1 problem)"
			}
		} else {
			okN++
			if len(l.Recoverable) > 0 {
				status = fmt.Sprintf("OK (%d crash leftovers)", len(l.Recoverable))
			}
		}
		problems = append(problems, l.Problems...)
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\n", l.Rel, orDash(l.Origin), l.Entries, l.Checkpoints, status)
	}
	tw.Flush()
	problems = append(problems, witnessProblems...)
	if len(witnesses) > 0 {
		tw = tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "WITNESS\tSIZE\tSTATUS")
		for _, w := range witnesses {
			size := "-"
			if w.Size >= 0 {
				size = fmt.Sprint(w.Size)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", w.Rel, size, w.Status)
		}
		tw.Flush()
	}
	for _, p := range problems {
		fmt.Fprintf(out, "problem (%s): %s\n", p.Kind, p.Message)
	}
	for _, l := range logs {
		for _, r := range l.Recoverable {
			fmt.Fprintf(out, "recoverable: %s\n", r)
		}
	}
	j, _ := json.Marshal(struct {
		Logs      int           `json:"logs"`
		OK        int           `json:"ok"`
		Failed    int           `json:"failed"`
		Witnesses int           `json:"witnesses"`
		Problems  []problemJSON `json:"problems"`
	}{len(logs), okN, failedN, len(witnesses), problems})
	fmt.Fprintln(out, string(j))
	switch {
	case len(logs) == 0:
		return fmt.Errorf("audit verify: no log found under %s", root)
	case failedN > 0:
		return fmt.Errorf("audit verify: %d of %d logs under %s failed: %s", failedN, len(logs), root, problems[0].Message)
	case len(problems) > 0:
		return fmt.Errorf("audit verify: %s", problems[0].Message)
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// ---------------------------------------------------------------------------
// Proof files: audit prove and audit verify --bundle.

// proofFile is the file `audit prove` writes: a receipt and the bundle
// proving that its ledger entry is in the hub's ledger.
//
//	{"receipt":{…receipt JSON…},"bundle":{…ledger.Bundle JSON…}}
type proofFile struct {
	Receipt json.RawMessage `json:"receipt"`
	Bundle  json.RawMessage `json:"bundle"`
}

const maxProofFile = ledger.MaxBundleSize + receipt.MaxJSONSize + 1024

func marshalProof(rc *receipt.Receipt, b ledger.Bundle) ([]byte, error) {
	rj, err := rc.MarshalJSON()
	if err != nil {
		return nil, err
	}
	bj, err := b.Marshal()
	if err != nil {
		return nil, err
	}
	j, err := json.Marshal(proofFile{Receipt: rj, Bundle: bj})
	if err != nil {
		return nil, err
	}
	return append(j, '\n'), nil
}

func parseProof(data []byte) (*receipt.Receipt, ledger.Bundle, error) {
	if len(data) > maxProofFile {
		return nil, ledger.Bundle{}, fmt.Errorf("%d bytes, more than a proof file can hold (%d)", len(data), maxProofFile)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var pf proofFile
	if err := dec.Decode(&pf); err != nil {
		return nil, ledger.Bundle{}, fmt.Errorf("not a proof file: %w", err)
	}
	if dec.More() {
		return nil, ledger.Bundle{}, errors.New("not a proof file: data after the JSON object")
	}
	if len(pf.Receipt) == 0 || len(pf.Bundle) == 0 {
		return nil, ledger.Bundle{}, errors.New("not a proof file: \"receipt\" and \"bundle\" are both required")
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, pf.Receipt); err != nil {
		return nil, ledger.Bundle{}, fmt.Errorf("the proof's receipt: %w", err)
	}
	rc, err := receipt.Parse(compact.Bytes())
	if err != nil {
		return nil, ledger.Bundle{}, fmt.Errorf("the proof's receipt: %w", err)
	}
	b, err := ledger.ParseBundle(pf.Bundle)
	if err != nil {
		return nil, ledger.Bundle{}, fmt.Errorf("the proof's bundle: %w", err)
	}
	return rc, b, nil
}

// proofCheck is one step of checking a proof.
type proofCheck struct {
	Check  string `json:"check"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// checkProof checks offline that rc is in the hub's ledger by b: b's
// checkpoint is the hub ledger's, signed with the hub's key from d; the
// inclusion proof holds; the proven entry is rc's ledger entry (at rc's
// index, for an acceptance); rc's signature verifies with its issuer's
// key. It returns every step and the checkpoint (zero if invalid).
func checkProof(d *directory.Directory, rc *receipt.Receipt, b ledger.Bundle) ([]proofCheck, ledger.Checkpoint) {
	var checks []proofCheck
	add := func(name string, err error, ok string) {
		if err != nil {
			checks = append(checks, proofCheck{name, false, err.Error()})
		} else {
			checks = append(checks, proofCheck{name, true, ok})
		}
	}
	var cp ledger.Checkpoint
	hv, err := hubVerifier(d)
	if err == nil {
		cp, err = ledger.ParseCheckpoint(b.Checkpoint, note.VerifierList(hv))
	}
	if want := logOrigin(d.Environment, d.Hub.ID, "ledger"); err == nil && cp.Origin != want {
		err = fmt.Errorf("the checkpoint is of the log %q, not of the hub's ledger %q", cp.Origin, want)
	}
	if err != nil {
		cp = ledger.Checkpoint{}
	}
	add("checkpoint signature", err, fmt.Sprintf("signed by the hub %s: %s, size %d, root %s", d.Hub.ID, cp.Origin, cp.Size, cp.Hash))

	if cp.Note == nil {
		add("inclusion proof", errors.New("not checked: no valid checkpoint"), "")
	} else {
		_, err := ledger.VerifyBundle(b, note.VerifierList(hv))
		add("inclusion proof", err, fmt.Sprintf("entry %d is in the ledger of %d entries (%d hashes)", b.Index, cp.Size, len(b.Proof)))
	}

	want, err := rc.LedgerEntry()
	if err == nil && !bytes.Equal(want, b.Entry) {
		what := fmt.Sprintf("%d bytes that are not a receipt", len(b.Entry))
		e, perr := receipt.ParseLedgerEntry(b.Entry)
		if perr == nil {
			what = fmt.Sprintf("the %s receipt of envelope %s (%s to %s)", e.Kind, e.EnvelopeID, e.Sender, e.Recipient)
		}
		err = fmt.Errorf("the bundle proves entry %d, which is %s, not this %s receipt of envelope %s", b.Index, what, rc.Kind, rc.EnvelopeID)
		if perr == nil && e.Kind == rc.Kind && e.EnvelopeID == rc.EnvelopeID {
			err = fmt.Errorf("the bundle proves entry %d, which names this %s receipt of envelope %s but differs from its ledger entry (%d bytes edited or another version)", b.Index, rc.Kind, rc.EnvelopeID, diffBytes(want, b.Entry))
		}
	}
	if err == nil && rc.Kind == receipt.Accepted && uint64(b.Index) != rc.Seq {
		err = fmt.Errorf("the bundle proves entry %d, but the acceptance receipt names ledger index %d", b.Index, rc.Seq)
	}
	add("ledger entry", err, fmt.Sprintf("entry %d is this %s receipt of envelope %s", b.Index, rc.Kind, rc.EnvelopeID))

	var key *ecdsa.PublicKey
	switch rc.Kind {
	case receipt.Accepted:
		if rc.Issuer != d.Hub.ID {
			err = fmt.Errorf("acceptance receipt issued by %s, not by the hub %s", rc.Issuer, d.Hub.ID)
		} else {
			key = d.HubKey()
		}
	case receipt.Recorded:
		host, herr := d.HostOf(rc.Recipient)
		switch {
		case herr != nil:
			err = herr
		case rc.Issuer != host.ID:
			err = fmt.Errorf("recording receipt issued by %s, but %s is hosted by %s", rc.Issuer, rc.Recipient, host.ID)
		default:
			key = host.Key()
		}
	}
	if key != nil {
		err = rc.Verify(key)
	}
	add("receipt signature", err, fmt.Sprintf("%s receipt signed by %s", rc.Kind, rc.Issuer))
	return checks, cp
}

// diffBytes counts the positions where a and b differ, and the length
// difference.
func diffBytes(a, b []byte) int {
	n := max(len(a), len(b)) - min(len(a), len(b))
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			n++
		}
	}
	return n
}

func printChecks(out io.Writer, checks []proofCheck) (failure string) {
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tRESULT")
	for _, c := range checks {
		r := "OK: " + c.Detail
		if !c.OK {
			r = "FAILED: " + c.Detail
			if failure == "" {
				failure = c.Check + ": " + c.Detail
			}
		}
		fmt.Fprintf(tw, "%s\t%s\n", c.Check, r)
	}
	tw.Flush()
	return failure
}

// verifyBundleFile is `audit verify --bundle path`.
func verifyBundleFile(out io.Writer, tr *trust, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	rc, b, err := parseProof(data)
	if err != nil {
		j, _ := json.Marshal(map[string]any{"bundle": path, "ok": false, "failure": err.Error()})
		fmt.Fprintln(out, string(j))
		return fmt.Errorf("audit verify: %s: %w", path, err)
	}
	fmt.Fprintf(out, "trust: %s\n", tr.source)
	fmt.Fprintf(out, "proof: %s receipt of envelope %s (%s to %s), ledger entry %d\n", rc.Kind, rc.EnvelopeID, rc.Sender, rc.Recipient, b.Index)
	checks, cp := checkProof(tr.dir, rc, b)
	failure := printChecks(out, checks)
	j, _ := json.Marshal(struct {
		Bundle         string       `json:"bundle"`
		OK             bool         `json:"ok"`
		EnvelopeID     string       `json:"envelope_id"`
		Index          int64        `json:"index"`
		CheckpointSize int64        `json:"checkpoint_size"`
		Checks         []proofCheck `json:"checks"`
		Failure        string       `json:"failure,omitempty"`
	}{path, failure == "", rc.EnvelopeID, b.Index, cp.Size, checks, failure})
	fmt.Fprintln(out, string(j))
	if failure != "" {
		return fmt.Errorf("audit verify: %s: %s", path, failure)
	}
	return nil
}

func auditProveCmd() *cobra.Command {
	var (
		cfg, id, outPath string
		timeout          time.Duration
	)
	c := &cobra.Command{
		Use:   "prove --config NODECONFIG --id ENVELOPE_ID --out FILE",
		Short: "Fetch from the hub the proof that an envelope's acceptance is in its ledger, check it, and write it to a file",
		Long: `Look up the envelope in the node's outbox, take the ledger index of its
acceptance receipt, fetch the inclusion bundle from the hub, check it as
'audit verify --bundle' does (and the hub's latest checkpoint against the
node's witness: a rollback or a fork fails), and write the receipt with the
bundle to FILE, for anyone to check offline with 'taxlink audit verify
--bundle FILE --directory … --directory-key …'.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			l, err := daemon.LoadNode(cfg, jsonLogger(cmd.ErrOrStderr(), slog.LevelWarn))
			if err != nil {
				return err
			}
			defer l.Close()
			o, err := l.Store.GetOutgoing(ctx, id)
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("audit prove: no envelope %s in the outbox of %s", id, l.Config.ID)
			}
			if err != nil {
				return err
			}
			if o.Accepted == nil {
				return fmt.Errorf("audit prove: envelope %s has no acceptance receipt yet (still in the outbox of %s)", id, l.Config.ID)
			}
			rc, err := receipt.Parse(o.Accepted)
			if err != nil {
				return fmt.Errorf("audit prove: envelope %s: stored acceptance receipt: %w", id, err)
			}
			if rc.Kind != receipt.Accepted || rc.EnvelopeID != id {
				return fmt.Errorf("audit prove: envelope %s: the stored acceptance receipt names another envelope", id)
			}
			d := l.Directory()
			raw, err := l.Node.Bundle(ctx, int64(rc.Seq))
			if err != nil {
				return fmt.Errorf("audit prove: bundle of ledger entry %d from the hub: %w", rc.Seq, err)
			}
			b, err := ledger.ParseBundle(raw)
			if err != nil {
				return fmt.Errorf("audit prove: the hub's bundle of ledger entry %d: %w", rc.Seq, err)
			}
			fmt.Fprintf(out, "proof: acceptance receipt of envelope %s (%s to %s), ledger entry %d\n", id, rc.Sender, rc.Recipient, rc.Seq)
			checks, cp := checkProof(d, rc, b)
			checks = append(checks, witnessCheck(ctx, l, cp))
			failure := printChecks(out, checks)
			if failure == "" {
				data, err := marshalProof(rc, b)
				if err != nil {
					return err
				}
				if err := os.WriteFile(outPath, data, 0o644); err != nil {
					return err
				}
				fmt.Fprintf(out, "wrote %s (%d bytes)\n", outPath, len(data))
			}
			written := ""
			if failure == "" {
				written = outPath
			}
			j, _ := json.Marshal(struct {
				ID             string `json:"id"`
				OK             bool   `json:"ok"`
				Index          int64  `json:"index"`
				CheckpointSize int64  `json:"checkpoint_size"`
				Root           string `json:"root"`
				ProofHashes    int    `json:"proof_hashes"`
				Out            string `json:"out,omitempty"`
				Failure        string `json:"failure,omitempty"`
			}{id, failure == "", b.Index, cp.Size, cp.Hash.String(), len(b.Proof), written, failure})
			fmt.Fprintln(out, string(j))
			if failure != "" {
				return fmt.Errorf("audit prove: envelope %s: %s", id, failure)
			}
			return nil
		},
	}
	c.Flags().StringVar(&cfg, "config", "", "node configuration `FILE`")
	c.Flags().StringVar(&id, "id", "", "`ENVELOPE_ID` of an envelope this node sent")
	c.Flags().StringVar(&outPath, "out", "", "write the proof to `FILE`")
	c.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "how long to wait for the hub")
	for _, f := range []string{"config", "id", "out"} {
		_ = c.MarkFlagRequired(f)
	}
	return c
}

// witnessCheck makes the node check the hub's latest checkpoint against
// the last one it saw (its witness: a rollback or a fork fails), and then
// the bundle's checkpoint cp against the witness: the hub must show this
// node one history.
func witnessCheck(ctx context.Context, l *daemon.LoadedNode, cp ledger.Checkpoint) proofCheck {
	const name = "node witness"
	if err := l.Node.CheckLedger(ctx); err != nil {
		return proofCheck{name, false, err.Error()}
	}
	hv, err := hubVerifier(l.Directory())
	if err != nil {
		return proofCheck{name, false, err.Error()}
	}
	wf := filepath.Join(l.Config.DataDir, witnessFile)
	wt, err := ledger.NewWitness(wf, note.VerifierList(hv))
	if err != nil {
		return proofCheck{name, false, err.Error()}
	}
	w, ok := wt.Latest()
	switch {
	case !ok || cp.Note == nil:
		return proofCheck{name, true, "not compared (no witness or no valid checkpoint)"}
	case w.Size < cp.Size:
		return proofCheck{name, false, fmt.Sprintf("%v: the bundle's checkpoint has size %d, but the hub's latest, fetched after it, only %d", ledger.ErrRollback, cp.Size, w.Size)}
	case w.Size == cp.Size && w.Hash != cp.Hash:
		return proofCheck{name, false, fmt.Sprintf("%v: the bundle's checkpoint of size %d has root %s, but the node holds root %s at that size (%s)", ledger.ErrFork, cp.Size, cp.Hash, w.Hash, wf)}
	case w.Size == cp.Size:
		return proofCheck{name, true, fmt.Sprintf("the bundle's checkpoint is the one the node holds (%s)", wf)}
	}
	return proofCheck{name, true, fmt.Sprintf("the hub's latest checkpoint (size %d) extends every one the node saw; the bundle's (size %d) predates it", w.Size, cp.Size)}
}

// ---------------------------------------------------------------------------
// Backups.

func auditBackupCmd() *cobra.Command {
	var (
		tf       trustFlags
		data, to string
	)
	c := &cobra.Command{
		Use:   "backup --data DIR --to DIR [--config CFG | --directory FILE --directory-key PEM]",
		Short: "Copy every log under a data directory to another directory, incrementally, and check the copies",
		Long: `Copy every log under --data (for example a hub's data directory: ledger and
audit) to the same relative path under --to, with ledger.Backup: the entries
up to each log's latest checkpoint, their hashes and the checkpoints, in the
ledger's own format. An existing copy is verified, checked to be a prefix of
the live log, and only extended. The live logs are opened read only and
need not be stopped; entries not yet covered by a checkpoint are copied by
the next run. Each copy is then checked against its live log (backup-check).
A running hub or node also backs up on its own when its configuration has
"backup": {"dir": …, "every": …}.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			if !dirExists(data) {
				return fmt.Errorf("--data %s: not a directory", data)
			}
			tr, err := tf.load(data)
			if err != nil {
				return err
			}
			rels, _, err := findLogs(data)
			if err != nil {
				return err
			}
			if len(rels) == 0 {
				return fmt.Errorf("audit backup: no log found under %s", data)
			}
			tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "LOG\tORIGIN\tLIVE ENTRIES\tCOPIED\tCHECKPOINTS\tSTATUS")
			var failures []string
			okN := 0
			for _, rel := range rels {
				live, dst := filepath.Join(data, rel), filepath.Join(to, rel)
				origin, _ := readOrigin(live)
				n, copied, cps, err := backupOne(cmd.Context(), tr.dir, live, dst)
				status := "OK"
				if err != nil {
					status = "FAILED: " + err.Error()
					failures = append(failures, fmt.Sprintf("%s -> %s: %v", live, dst, err))
				} else {
					okN++
					if copied < n {
						status = fmt.Sprintf("OK (%d newer entries not yet checkpointed: next run)", n-copied)
					}
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\n", rel, orDash(origin), n, copied, cps, status)
			}
			tw.Flush()
			j, _ := json.Marshal(map[string]any{"logs": len(rels), "ok": okN, "failed": len(failures), "to": to})
			fmt.Fprintln(out, string(j))
			if len(failures) > 0 {
				return fmt.Errorf("audit backup: %s", failures[0])
			}
			return nil
		},
	}
	c.Flags().StringVar(&data, "data", "", "back up every log under `DIR` (a hub's or a node's data directory)")
	c.Flags().StringVar(&to, "to", "", "into `DIR`, at the same relative paths")
	tf.register(c)
	_ = c.MarkFlagRequired("data")
	_ = c.MarkFlagRequired("to")
	return c
}

// backupOne copies the log in live into dst and checks the copy. It
// returns the live log's size, the copy's, and the copy's checkpoints.
func backupOne(ctx context.Context, d *directory.Directory, live, dst string) (n, copied int64, cps int, err error) {
	origin, ok := readOrigin(live)
	if !ok {
		return 0, 0, 0, fmt.Errorf("%s: no intact file header: not a readable log (audit verify --data names the damage)", live)
	}
	v, _, err := signerOf(d, origin)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("%s: %w", live, err)
	}
	l, err := ledger.Open(live, ledger.Options{Origin: origin, Verifier: v})
	if err != nil {
		return 0, 0, 0, err
	}
	defer l.Close()
	n = l.Size()
	if err := ledger.Backup(ctx, l, dst); err != nil {
		return n, 0, 0, err
	}
	if err := ledger.CheckBackup(live, dst, note.VerifierList(v)); err != nil {
		return n, 0, 0, err
	}
	rep, err := ledger.VerifyDir(dst, note.VerifierList(v))
	if err != nil {
		return n, rep.Entries, rep.Checkpoints, err
	}
	return n, rep.Entries, rep.Checkpoints, nil
}

func auditBackupCheckCmd() *cobra.Command {
	var (
		tf           trustFlags
		live, backup string
	)
	c := &cobra.Command{
		Use:   "backup-check --live DIR --backup DIR [--config CFG | --directory FILE --directory-key PEM]",
		Short: "Check that backups are consistent with the live logs",
		Long: `Check every log under --live against its copy at the same relative path under
--backup (or, if --live is itself a log directory, against --backup), read
only: the live log and the copy are each verified, the copy must be of the
same log, its entries the live log's first entries byte for byte, and its
checkpoints agree with the live log's. A truncated, edited, reordered or
foreign copy is named, with the file, record and offset; so is a copy of a
log that is no longer there. A copy may lag behind the live log (it is
caught up by the next backup).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			for _, p := range []string{live, backup} {
				if !dirExists(p) {
					return fmt.Errorf("%s: not a directory", p)
				}
			}
			tr, err := tf.load(live)
			if err != nil {
				return err
			}
			var pairs [][2]string // rel in live, rel in backup
			if regularFile(filepath.Join(live, "entries")) || regularFile(filepath.Join(live, "head")) {
				pairs = append(pairs, [2]string{".", "."})
			} else {
				lrels, _, err := findLogs(live)
				if err != nil {
					return err
				}
				brels, _, err := findLogs(backup)
				if err != nil {
					return err
				}
				for _, r := range lrels {
					pairs = append(pairs, [2]string{r, r})
				}
				for _, r := range brels {
					if !slices.Contains(lrels, r) {
						pairs = append(pairs, [2]string{"", r})
					}
				}
			}
			if len(pairs) == 0 {
				return fmt.Errorf("audit backup-check: no log found under %s", live)
			}
			tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "LOG\tLIVE ENTRIES\tCOPY ENTRIES\tSTATUS")
			problems := []problemJSON{}
			okN := 0
			for _, pr := range pairs {
				rel := pr[1]
				lp, bp := filepath.Join(live, pr[0]), filepath.Join(backup, pr[1])
				ln, bn, ps := checkBackupPair(tr.dir, lp, bp, pr[0] == "", !dirExists(bp))
				status := "OK"
				if len(ps) > 0 {
					status = verdict(ps[0]) + ": " + ps[0].Message
				} else {
					okN++
					if bn < ln {
						status = fmt.Sprintf("OK (copy %d entries behind)", ln-bn)
					}
				}
				problems = append(problems, ps...)
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", rel, sizeOrDash(ln), sizeOrDash(bn), status)
			}
			tw.Flush()
			j, _ := json.Marshal(struct {
				Logs     int           `json:"logs"`
				OK       int           `json:"ok"`
				Failed   int           `json:"failed"`
				Problems []problemJSON `json:"problems"`
			}{len(pairs), okN, len(pairs) - okN, problems})
			fmt.Fprintln(out, string(j))
			if len(problems) > 0 {
				return fmt.Errorf("audit backup-check: %s", problems[0].Message)
			}
			return nil
		},
	}
	c.Flags().StringVar(&live, "live", "", "the live logs: a data directory, or one log directory")
	c.Flags().StringVar(&backup, "backup", "", "their copies (as written by 'audit backup' or the daemon's periodic backup)")
	tf.register(c)
	_ = c.MarkFlagRequired("live")
	_ = c.MarkFlagRequired("backup")
	return c
}

func sizeOrDash(n int64) string {
	if n < 0 {
		return "-"
	}
	return fmt.Sprint(n)
}

// verdict names what a backup problem means for the copy.
func verdict(p problemJSON) string {
	switch ledger.Kind(p.Kind) {
	case ledger.KindForeign:
		return "FOREIGN"
	case ledger.KindTruncated, ledger.KindDropped:
		return "TRUNCATED"
	case ledger.KindReordered, ledger.KindIndex:
		return "REORDERED"
	case ledger.KindDeleted:
		return "DELETED"
	case ledger.KindCRC, ledger.KindMismatch, ledger.KindHash, ledger.KindRoot, ledger.KindSignature, ledger.KindHead, ledger.KindMalformed:
		return "EDITED"
	case ledger.KindMissing:
		return "MISSING"
	case "rollback":
		return "LIVE LOG BEHIND ITS COPY"
	case "orphan":
		return "NO LIVE LOG"
	}
	return "FAILED"
}

// checkBackupPair checks the copy bp of the live log lp. It returns both
// sizes (-1 when unknown) and the problems found.
func checkBackupPair(d *directory.Directory, lp, bp string, noLive, noCopy bool) (int64, int64, []problemJSON) {
	switch {
	case noLive:
		return -1, -1, []problemJSON{looseProblem(bp, bp, "orphan", "a copy of no live log (the live log is missing, or this is not its copy)")}
	case noCopy:
		return -1, -1, []problemJSON{looseProblem(bp, bp, "missing", "no copy of "+lp)}
	}
	// The live log itself.
	lr := verifyLog(filepath.Dir(lp), filepath.Base(lp), d)
	if len(lr.Problems) > 0 || lr.verifier == nil {
		ps := lr.Problems
		if len(ps) == 0 {
			ps = []problemJSON{looseProblem(lp, lp, "key", "the signer of the live log is unknown")}
		}
		return lr.Entries, -1, ps
	}
	err := ledger.CheckBackup(lp, bp, note.VerifierList(lr.verifier))
	if err != nil {
		ps := ledger.Problems(err)
		if len(ps) == 0 {
			kind := "error"
			if errors.Is(err, ledger.ErrRollback) {
				kind = "rollback"
			}
			return lr.Entries, -1, []problemJSON{looseProblem(bp, bp, kind, err.Error())}
		}
		var out []problemJSON
		for _, p := range ps {
			out = append(out, placed(bp, p))
		}
		return lr.Entries, -1, out
	}
	rep, err := ledger.VerifyDir(bp, note.VerifierList(lr.verifier))
	if err != nil {
		return lr.Entries, rep.Entries, []problemJSON{looseProblem(bp, bp, "error", err.Error())}
	}
	return lr.Entries, rep.Entries, nil
}

// ---------------------------------------------------------------------------
// audit bench

func auditBenchCmd() *cobra.Command {
	var (
		entries int
		dir     string
	)
	c := &cobra.Command{
		Use:   "bench --entries N --dir DIR",
		Short: "Append N entries to a new log durably, then prove inclusion of random ones: appends/s, proof time and size",
		Long: `Create a log in DIR (which must not hold one), append N entries of 200
pseudo-random bytes in batches of 1,000 from 4 concurrent callers, durably
(fdatasync as always), checkpoint, reopen (which verifies the whole log), and
make and verify inclusion proofs of 1,000 random entries. With the default of
1,000,000 entries this is ledger.BenchMillion. The log is left in DIR.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if entries < 1 {
				return errors.New("--entries: at least 1")
			}
			errw := cmd.ErrOrStderr()
			step := max(entries/10, 1)
			next := step
			progress := func(done int) {
				if done >= next {
					fmt.Fprintf(errw, "appended %d/%d\n", done, entries)
					for next <= done {
						next += step
					}
				}
			}
			res, err := ledger.Bench(dir, entries, progress)
			if err != nil {
				return fmt.Errorf("audit bench: %w", err)
			}
			out := cmd.OutOrStdout()
			fmt.Fprint(out, res.String())
			j, _ := json.Marshal(map[string]any{
				"entries":         res.Entries,
				"entry_bytes":     res.EntrySize,
				"append_ms":       res.AppendTime.Milliseconds(),
				"appends_per_sec": int64(res.AppendsPerSec),
				"reopen_ms":       res.OpenTime.Milliseconds(),
				"proofs":          res.Proofs,
				"prove_mean_us":   float64(res.ProveMean.Nanoseconds()) / 1e3,
				"verify_mean_us":  float64(res.VerifyMean.Nanoseconds()) / 1e3,
				"proof_hashes":    res.ProofHashes,
				"proof_bytes":     res.ProofBytes,
				"bundle_bytes":    res.BundleBytes,
				"disk_bytes":      res.DiskBytes,
			})
			fmt.Fprintln(out, string(j))
			return nil
		},
	}
	c.Flags().IntVar(&entries, "entries", 1_000_000, "entries to append")
	c.Flags().StringVar(&dir, "dir", "", "create the log in `DIR` (must not hold one)")
	_ = c.MarkFlagRequired("dir")
	return c
}

// Package ledger implements taxlink's tamper-evident ledger: an
// append-only Merkle log on disk (RFC 6962 hashing, as in Go's checksum
// database, through golang.org/x/mod/sumdb/tlog) with signed checkpoints
// in the C2SP tlog-checkpoint format (Ed25519 signed notes through
// golang.org/x/mod/sumdb/note).
//
// Every acceptance, receipt, suspension and directory change the hub
// records is an entry. A receipt carries its entry's index; anyone holding
// receipts, checkpoints and the log's public key can check that an entry
// is in the log (InclusionProof, VerifyInclusion, Bundle, VerifyBundle)
// and that a later checkpoint extends an earlier one (ConsistencyProof,
// VerifyConsistency, Witness), so the hub cannot drop, alter or reorder
// what it recorded without that being detected — even by an
// administrator with access to the files, as long as someone outside
// holds a checkpoint.
//
// # Guarantees
//
//   - Append and AppendBatch return only once the entries are durable:
//     written and fdatasync'd. Concurrent appends share one sync (group
//     commit). Their hash slots, recomputable from the entries, are
//     written with them and synced before the next checkpoint and at Close.
//   - Checkpoint returns only once the signed checkpoint, and every hash
//     slot it covers, is durable.
//   - Open after a crash (kill -9, power loss) recovers every acknowledged
//     entry and checkpoint: it trims torn tails, recomputes missing hash
//     slots and completes an interrupted head update, and reports what it
//     did (Recovered). Everything else that does not add up — a record
//     whose CRC fails, an entry missing, reordered or edited, a stored
//     hash or checkpoint root that does not match the entries, a
//     checkpoint dropped or forged, entries lost under a checkpoint, a
//     file from another log — is refused with ErrCorrupt naming the file,
//     the record and the byte offset. VerifyDir reports all of it
//     offline, read only.
//   - A write or sync error stops the log (ErrFailed): nothing more is
//     accepted until it is reopened, which recovers the state on disk.
//
// # Files
//
// A log directory holds five files. Integers are big-endian. docs/ledger.md
// at the module root specifies them byte by byte.
//
//	entries      header, then one record per entry
//	hashes       header, then tlog stored hashes in 32-byte slots: slot i at
//	             header size + 32·i is tlog stored hash index i
//	             (recomputable from entries)
//	checkpoints  header, then one record per signed checkpoint note
//	head         header, then count u64 | SHA-256 of the last checkpoint
//	             note | CRC-32C u32: the number of checkpoints acknowledged,
//	             replaced atomically (write, fsync, rename, fsync dir)
//	lock         empty; flock'd by the Log that has the directory open for
//	             writing
//
// Every file but lock starts with the same header, which ties the files
// to one log:
//
//	"TXLEDGER" | kind (12 bytes, NUL-padded: "entries", "hashes",
//	"checkpoints", "head") | version u32 = 1 | log id (16 random bytes) |
//	origin length u16 | origin | CRC-32C u32 of the preceding bytes
//
// A record (entries and checkpoints) is
//
//	index u64 | length u32 | CRC-32C u32 of (index | length | data) | data
//
// where index is the entry index (or the checkpoint number), so that a
// deleted or reordered record is named as such, and length is at most
// MaxEntrySize (64 KiB) for an entry and MaxCheckpointSize (4 KiB) for a
// checkpoint. A checkpoint note's text is "<origin>\n<size>\n<base64
// root>\n".
//
// # Crash recovery
//
// A torn tail is what a crash can leave after the last complete record: an
// incomplete record, a final record whose CRC fails, or zero bytes. Open
// trims it unless a checkpoint covers it (then the log is corrupt: data
// a signature vouched for is gone). Hash slots beyond the entries are
// trimmed, and those after the last checkpoint that are missing or do not
// match the entries (not yet synced at the crash) are recomputed; a
// stored hash a checkpoint covers that does not match is corruption. A
// head that counts one checkpoint fewer than the file holds (a crash
// between appending a checkpoint and replacing the head) is brought up to
// date. A head that counts more checkpoints than the file holds means a
// checkpoint was dropped: corrupt.
//
// # Concurrency
//
// A Log is safe for concurrent use. One writer goroutine encodes and
// writes groups of appends; one syncer goroutine fdatasyncs the entries and then
// publishes everything written before its sync started, so appends that
// arrive during a sync are committed together by the next one. Readers
// (Entry, proofs) never see an entry before it is durable.
package ledger

package ledger

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"

	"golang.org/x/mod/sumdb/tlog"
)

// Size limits.
const (
	// MaxEntrySize is the largest entry Append accepts, in bytes.
	MaxEntrySize = 64 << 10
	// MaxBatchEntries is the largest number of entries one AppendBatch
	// call accepts.
	MaxBatchEntries = 1 << 16
	// MaxCheckpointSize is the largest signed checkpoint note, in bytes.
	MaxCheckpointSize = 4 << 10
	// MaxOriginLen is the longest origin line, in bytes.
	MaxOriginLen = 255
)

// File names inside a log directory.
const (
	fileEntries     = "entries"
	fileHashes      = "hashes"
	fileCheckpoints = "checkpoints"
	fileHead        = "head"
	fileLock        = "lock"
	fileHeadTmp     = "head.tmp"
)

const (
	fileMagic        = "TXLEDGER"
	fileVersion      = 1
	kindFieldLen     = 12
	logIDLen         = 16
	headerFixedLen   = 8 + kindFieldLen + 4 + logIDLen + 2 // up to the origin
	recordHeaderSize = 16
	headBodyLen      = 8 + 32 + 4
)

// crcTable returns the CRC-32C (Castagnoli) table.
func crcTable() *crc32.Table { return crc32.MakeTable(crc32.Castagnoli) }

// fileHeader is the header that starts each of the four files.
type fileHeader struct {
	kind   string
	logID  [logIDLen]byte
	origin string
}

// marshal encodes h:
//
//	magic "TXLEDGER" | kind (12 bytes, NUL-padded) | version u32 | log id (16) |
//	origin length u16 | origin | CRC-32C of all preceding bytes (u32)
func (h fileHeader) marshal() []byte {
	b := make([]byte, 0, headerFixedLen+len(h.origin)+4)
	b = append(b, fileMagic...)
	var kind [kindFieldLen]byte
	copy(kind[:], h.kind)
	b = append(b, kind[:]...)
	b = binary.BigEndian.AppendUint32(b, fileVersion)
	b = append(b, h.logID[:]...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(h.origin)))
	b = append(b, h.origin...)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, crcTable()))
}

// size returns the encoded length of h.
func (h fileHeader) size() int64 { return int64(headerFixedLen + len(h.origin) + 4) }

// readHeader reads and checks the header at the start of f. The returned
// string is empty on success and describes the defect otherwise (err is
// reserved for I/O errors).
func readHeader(f io.ReaderAt, wantKind string) (fileHeader, string, error) {
	var h fileHeader
	fixed := make([]byte, headerFixedLen)
	if n, err := f.ReadAt(fixed, 0); n < len(fixed) {
		if err != nil && err != io.EOF {
			return h, "", err
		}
		return h, fmt.Sprintf("header: file too short (%d bytes)", n), nil
	}
	if string(fixed[:8]) != fileMagic {
		return h, fmt.Sprintf("header: bad magic %q", fixed[:8]), nil
	}
	kind := string(bytes.TrimRight(fixed[8:8+kindFieldLen], "\x00"))
	if v := binary.BigEndian.Uint32(fixed[8+kindFieldLen:]); v != fileVersion {
		return h, fmt.Sprintf("header: unsupported version %d", v), nil
	}
	copy(h.logID[:], fixed[8+kindFieldLen+4:])
	olen := int(binary.BigEndian.Uint16(fixed[headerFixedLen-2:]))
	rest := make([]byte, olen+4)
	if n, err := f.ReadAt(rest, headerFixedLen); n < len(rest) {
		if err != nil && err != io.EOF {
			return h, "", err
		}
		return h, "header: file ends inside the header", nil
	}
	all := append(fixed, rest[:olen]...)
	if crc32.Checksum(all, crcTable()) != binary.BigEndian.Uint32(rest[olen:]) {
		return h, "header: CRC mismatch", nil
	}
	if kind != wantKind {
		return h, fmt.Sprintf("header: file is a %q file, not %q", kind, wantKind), nil
	}
	h.kind = kind
	h.origin = string(rest[:olen])
	if err := checkOrigin(h.origin); err != nil {
		return h, "header: " + err.Error(), nil
	}
	return h, "", nil
}

// checkOrigin reports whether s is a valid origin line: 1..MaxOriginLen
// bytes of printable ASCII without spaces.
func checkOrigin(s string) error {
	if len(s) == 0 || len(s) > MaxOriginLen {
		return fmt.Errorf("origin must be 1..%d bytes, got %d", MaxOriginLen, len(s))
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= 0x20 || s[i] >= 0x7f {
			return fmt.Errorf("origin has byte 0x%02x at %d; only printable ASCII without spaces is allowed", s[i], i)
		}
	}
	return nil
}

// appendRecord appends the framing of one record to buf:
//
//	index u64 | length u32 | CRC-32C(index | length | data) u32 | data
func appendRecord(buf []byte, index int64, data []byte) []byte {
	start := len(buf)
	buf = binary.BigEndian.AppendUint64(buf, uint64(index))
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(data)))
	c := crc32.Update(0, crcTable(), buf[start:start+12])
	c = crc32.Update(c, crcTable(), data)
	buf = binary.BigEndian.AppendUint32(buf, c)
	return append(buf, data...)
}

// recordCRC returns the CRC a record with this header prefix and data must
// carry.
func recordCRC(hdr []byte, data []byte) uint32 {
	c := crc32.Update(0, crcTable(), hdr[:12])
	return crc32.Update(c, crcTable(), data)
}

// recStatus is the outcome of reading one record.
type recStatus int

const (
	recOK      recStatus = iota
	recEOF               // clean end of file
	recTorn              // an incomplete record or a zero-filled tail runs to EOF
	recBadCRC            // complete record, CRC mismatch
	recTooLong           // length field above the limit: framing lost
)

// record is one record read by a recordReader.
type record struct {
	status recStatus
	index  int64  // the index field
	offset int64  // where the record starts
	data   []byte // valid until the next call to next
	last   bool   // the record ends exactly at end of file
	detail string // for recTorn and recTooLong
}

// recordReader reads framed records sequentially from a file.
type recordReader struct {
	f      io.ReaderAt
	r      *bufReader
	off    int64
	size   int64
	maxLen int
}

// newRecordReader reads records from f between offsets start and size.
func newRecordReader(f io.ReaderAt, start, size int64, maxLen int) *recordReader {
	return &recordReader{
		f:      f,
		r:      &bufReader{src: f, pos: start, end: size, buf: make([]byte, 1<<20)},
		off:    start,
		size:   size,
		maxLen: maxLen,
	}
}

// next reads the next record. After recTorn or recTooLong the reader must
// not be used again.
func (rr *recordReader) next() (record, error) {
	rec := record{offset: rr.off}
	remain := rr.size - rr.off
	if remain == 0 {
		rec.status = recEOF
		return rec, nil
	}
	if remain < recordHeaderSize {
		hdr, err := rr.r.Peek(int(remain))
		if err != nil {
			return rec, err
		}
		rec.status = recTorn
		rec.detail = fmt.Sprintf("incomplete record header (%d of %d bytes)", remain, recordHeaderSize)
		if allZero(hdr) {
			rec.detail = "zero-filled tail"
		}
		return rec, nil
	}
	hdr, err := rr.r.Peek(recordHeaderSize)
	if err != nil {
		return rec, err
	}
	if allZero(hdr) {
		zero, err := rr.restIsZero(remain)
		if err != nil {
			return rec, err
		}
		if zero {
			rec.status = recTorn
			rec.detail = fmt.Sprintf("zero-filled tail of %d bytes", remain)
			return rec, nil
		}
	}
	rec.index = int64(binary.BigEndian.Uint64(hdr[0:8]))
	n := int64(binary.BigEndian.Uint32(hdr[8:12]))
	want := binary.BigEndian.Uint32(hdr[12:16])
	if n > int64(rr.maxLen) {
		rec.status = recTooLong
		rec.detail = fmt.Sprintf("length %d exceeds the limit of %d bytes", n, rr.maxLen)
		return rec, nil
	}
	if recordHeaderSize+n > remain {
		rec.status = recTorn
		rec.detail = fmt.Sprintf("incomplete record (%d of %d bytes)", remain, recordHeaderSize+n)
		return rec, nil
	}
	buf, err := rr.r.Peek(int(recordHeaderSize + n))
	if err != nil {
		return rec, err
	}
	rec.data = buf[recordHeaderSize:]
	if recordCRC(buf, rec.data) != want {
		rec.status = recBadCRC
	}
	rr.off += recordHeaderSize + n
	rec.last = rr.off == rr.size
	if _, err := rr.r.Discard(int(recordHeaderSize + n)); err != nil {
		return rec, err
	}
	return rec, nil
}

// restIsZero reports whether the remaining n bytes are all zero, without
// consuming them.
func (rr *recordReader) restIsZero(n int64) (bool, error) {
	sr := io.NewSectionReader(rr.f, rr.off, n)
	buf := make([]byte, 64<<10)
	for {
		k, err := sr.Read(buf)
		if !allZero(buf[:k]) {
			return false, nil
		}
		if err == io.EOF {
			return true, nil
		}
		if err != nil {
			return false, err
		}
	}
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// bufReader is a minimal buffered reader with Peek and Discard over a
// region [pos, end) of an io.ReaderAt.
type bufReader struct {
	src  io.ReaderAt
	pos  int64 // file offset of buf[w]
	end  int64
	buf  []byte
	r, w int
}

// Peek returns the next n bytes without consuming them; n must not exceed
// the buffer size, and the region must hold n more bytes.
func (b *bufReader) Peek(n int) ([]byte, error) {
	if n > len(b.buf) {
		return nil, fmt.Errorf("ledger: internal: peek of %d bytes exceeds buffer", n)
	}
	for b.w-b.r < n {
		if b.r > 0 {
			copy(b.buf, b.buf[b.r:b.w])
			b.w -= b.r
			b.r = 0
		}
		want := min(int64(len(b.buf)-b.w), b.end-b.pos)
		if want <= 0 {
			return nil, io.ErrUnexpectedEOF
		}
		k, err := b.src.ReadAt(b.buf[b.w:b.w+int(want)], b.pos)
		b.w += k
		b.pos += int64(k)
		if err != nil && !(err == io.EOF && b.w-b.r >= n) {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	return b.buf[b.r : b.r+n], nil
}

// Discard consumes n buffered bytes.
func (b *bufReader) Discard(n int) (int, error) {
	if n > b.w-b.r {
		return 0, fmt.Errorf("ledger: internal: discard of %d bytes exceeds buffered %d", n, b.w-b.r)
	}
	b.r += n
	return n, nil
}

// frontier holds the roots of the complete subtrees of a Merkle tree, left
// to right (strictly decreasing sizes): enough to append leaves and compute
// the root without reading stored hashes.
type frontier struct {
	n     int64
	nodes []frontierNode
}

type frontierNode struct {
	level int
	hash  tlog.Hash
}

// add appends a leaf with hash leaf and appends to out the stored hashes
// for that record, in the order tlog.StoredHashes returns them (the leaf,
// then each subtree it completes).
func (f *frontier) add(leaf tlog.Hash, out []tlog.Hash) []tlog.Hash {
	f.nodes = append(f.nodes, frontierNode{0, leaf})
	out = append(out, leaf)
	for k := len(f.nodes); k >= 2 && f.nodes[k-1].level == f.nodes[k-2].level; k = len(f.nodes) {
		h := tlog.NodeHash(f.nodes[k-2].hash, f.nodes[k-1].hash)
		f.nodes[k-2] = frontierNode{f.nodes[k-2].level + 1, h}
		f.nodes = f.nodes[:k-1]
		out = append(out, h)
	}
	f.n++
	return out
}

// root returns the RFC 6962 tree hash of the f.n leaves.
func (f *frontier) root() tlog.Hash {
	if len(f.nodes) == 0 {
		h, _ := tlog.TreeHash(0, nil)
		return h
	}
	h := f.nodes[len(f.nodes)-1].hash
	for i := len(f.nodes) - 2; i >= 0; i-- {
		h = tlog.NodeHash(f.nodes[i].hash, h)
	}
	return h
}

// clone returns an independent copy of f.
func (f *frontier) clone() frontier {
	return frontier{n: f.n, nodes: append([]frontierNode(nil), f.nodes...)}
}

// headBody is the content of the head file after its header: the number
// of checkpoints and the SHA-256 of the last one's note.
type headBody struct {
	count int64
	last  [32]byte
}

// marshal encodes b: count u64 | SHA-256 of the last note (32) | CRC-32C u32.
func (b headBody) marshal() []byte {
	out := binary.BigEndian.AppendUint64(nil, uint64(b.count))
	out = append(out, b.last[:]...)
	return binary.BigEndian.AppendUint32(out, crc32.Checksum(out, crcTable()))
}

// parseHeadBody decodes the bytes after the head file's header.
func parseHeadBody(p []byte) (headBody, string) {
	var b headBody
	if len(p) != headBodyLen {
		return b, fmt.Sprintf("body is %d bytes, want %d", len(p), headBodyLen)
	}
	if crc32.Checksum(p[:40], crcTable()) != binary.BigEndian.Uint32(p[40:]) {
		return b, "CRC mismatch"
	}
	c := binary.BigEndian.Uint64(p[:8])
	if c > 1<<62 {
		return b, fmt.Sprintf("checkpoint count %d out of range", c)
	}
	b.count = int64(c)
	copy(b.last[:], p[8:40])
	return b, ""
}

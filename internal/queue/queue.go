// Package queue is the hub's durable store: accepted envelopes waiting for
// delivery, one queue per recipient, the acceptance receipts by envelope ID,
// and the recording receipts waiting for their senders.
//
// A hub running alone keeps its queue entries in a SQLite file of its own
// (Options.File), committed before Enqueue returns, the
// entries and removals that arrive together sharing one commit; the
// replicas of a cluster, or hubs on an external JetStream, keep them in
// JetStream work-queue streams, every write synced to disk before
// JetStream acknowledges it (SyncAlways). Either way, when Enqueue
// returns, the envelope survives a SIGKILL or a power cut. The ciphertext of
// an envelope larger than the inline limit is a blob (package blob), stored
// durably before the queue entry that names it: a file of its own at a hub
// running alone, a chain of chunk messages in JetStream at replicas of a
// cluster.
package queue

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"taxlink/internal/blob"
	"taxlink/internal/pause"
)

// Stream and bucket names.
const (
	blobStream    = "TL_BLOB"
	receiptStream = "TL_RECEIPTS"
	acceptedKV    = "TL_ACCEPTED"
	blobHeader    = "Tl-Blob"
	ledgerHeader  = "Tl-Ledger-Index"
)

// DefaultInlineMax is the largest ciphertext kept inside its queue entry.
const DefaultInlineMax = 512 << 10

// DefaultDuplicateWindow is how long JetStream remembers an envelope ID by
// default, for shared queues (a hub alone finds the ID of an entry still
// queued in its file). It only matters between a queue entry and its
// acceptance receipt (a hub stopped in between, its sender retrying);
// later repeats find the receipt. A stream that starts again reads every message of the window
// back to rebuild the IDs: a hub restarted with 295,000 envelopes queued in
// the last 4 minutes accepted again after 1.91 s with a 10-minute window,
// 0.98 s with this one (docs/benchmarks.md).
const DefaultDuplicateWindow = 2 * time.Minute

// ackWait is how long a delivery taken by a hub that stopped answering
// stays its own before another may take it; a hub keeps the deliveries it
// works on with progress reports every ackWait/3.
const ackWait = 15 * time.Second

// queueShards is how many work-queue streams the recipients' queues are
// spread over. On every acknowledgement JetStream asks each consumer of the
// stream whether it still needs the message: with one consumer per local
// government on a single stream, that walk cost about 1.5 ms of CPU per
// delivery, the largest cost of the hub (docs/benchmarks.md). Spread over
// 16 streams, a walk visits about 112.
const queueShards = 16

// shardOf returns the work-queue stream that holds the queue of the
// recipient whose subject token is tok, and the queue's subject in it. A
// recipient's queue is always in the same stream, so deduplication by
// envelope ID, which JetStream keeps per stream, still covers every
// attempt.
func shardOf(tok string) (stream, subject string) {
	h := fnv.New32a()
	_, _ = h.Write([]byte(tok))
	n := int(h.Sum32() % queueShards)
	stream, _ = shard(n)
	return stream, fmt.Sprintf("q.%02d.%s", n, tok)
}

// shard returns the name of work-queue stream n and the subjects it holds.
func shard(n int) (stream, subjects string) {
	return fmt.Sprintf("TL_QUEUE_%02d", n), fmt.Sprintf("q.%02d.*", n)
}

// InDataDir returns the options of a hub running alone whose data
// directory is dir: the queue entries in dir/queue.db, the blobs in
// dir/blobs, JetStream (for what an earlier version kept there) in
// dir/jetstream.
func InDataDir(dir string) Options {
	return Options{StoreDir: filepath.Join(dir, "jetstream"), File: filepath.Join(dir, FileName), BlobDir: filepath.Join(dir, "blobs")}
}

// Options configures Open.
type Options struct {
	// StoreDir is where JetStream keeps its files.
	StoreDir string
	// File is the SQLite file of a hub running alone's queue entries
	// (default FileName in StoreDir). A replica of a cluster refuses to
	// start while the file holds entries.
	File string
	// InlineMax is the largest ciphertext stored in the queue entry itself.
	InlineMax int
	// DuplicateWindow is how long JetStream remembers an envelope ID to
	// make a repeated enqueue a no-op (default DefaultDuplicateWindow);
	// the acceptance index covers the rest.
	DuplicateWindow time.Duration
	Logger          *slog.Logger
	// Cluster, when set, joins the embedded server to a JetStream cluster
	// of hub replicas, and every stream and bucket is replicated to a
	// quorum before a write is acknowledged.
	Cluster *Cluster
	// External, when set, uses an external JetStream cluster instead of
	// an embedded server (StoreDir and Cluster are then unused).
	External *External
	// BlobDir, for a hub running alone, is the directory that keeps the
	// ciphertexts above InlineMax, one file each. Empty, they are chunks
	// in JetStream, which is what replicas (Cluster, External) must use.
	BlobDir string
}

// External is a JetStream cluster run apart from the hub. Its servers
// must sync every write before acknowledging it (sync_interval: always,
// or streams replicated to 3 servers, whose Raft log syncs each write).
type External struct {
	// URL lists the servers (tls://HOST:PORT, comma-separated).
	URL string
	// TLS authenticates both ways: the hub's certificate, and the roots
	// the servers' certificates chain to.
	TLS *tls.Config
	// Replicas is the copies of each stream (default 3).
	Replicas int
}

// Cluster makes the embedded JetStream server one replica of a cluster.
type Cluster struct {
	// Name is the cluster's name, the same on every replica.
	Name string
	// ServerName is this replica's name, unique in the cluster.
	ServerName string
	// Listen is the host:port this replica accepts routes on.
	Listen string
	// Routes are the host:port route addresses of the replicas (this
	// one's may be among them).
	Routes []string
	// TLS secures the routes both ways (pki.PeerConfig): replicas carry
	// the hub's queues and must authenticate each other.
	TLS *tls.Config
	// Replicas is how many servers hold each stream (default 3).
	Replicas int
}

// replicas returns the number of copies of each stream.
func (o *Options) replicas() int {
	switch {
	case o.External != nil:
		return cmp.Or(o.External.Replicas, 3)
	case o.Cluster != nil:
		return max(o.Cluster.Replicas, 1)
	}
	return 1
}

// shared reports whether other hubs use the same JetStream (replicas of
// one cluster, or hubs on an external one).
func (o *Options) shared() bool { return o.Cluster != nil || o.External != nil }

// Shared reports whether other hubs use this queue too (the replicas of a
// cluster, or an external JetStream).
func (q *Queue) Shared() bool { return q.opts.shared() }

// Queue is the hub's durable store. It is safe for concurrent use.
type Queue struct {
	opts Options
	srv  *server.Server
	nc   *nats.Conn
	js   jetstream.JetStream
	kv   jetstream.KeyValue
	// blobs holds the ciphertexts above InlineMax.
	blobs blobStore
	// file holds the entries of a hub alone; nil for a shared queue,
	// whose entries are in the work-queue streams.
	file *fileEntries
	log  *slog.Logger
}

// Open starts an embedded JetStream server in opts.StoreDir (or connects
// to opts.External), creates the streams if needed and, for a hub alone,
// opens the entries file, moving into it what an earlier version queued
// in JetStream. On error nothing stays open.
func Open(ctx context.Context, opts Options) (*Queue, error) {
	if opts.InlineMax <= 0 {
		opts.InlineMax = DefaultInlineMax
	}
	if opts.DuplicateWindow <= 0 {
		opts.DuplicateWindow = DefaultDuplicateWindow
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.File == "" {
		opts.File = filepath.Join(opts.StoreDir, FileName)
	}
	q := &Queue{opts: opts, log: opts.Logger}
	var dir *blob.Dir
	var err error
	if opts.BlobDir != "" {
		if opts.shared() {
			return nil, errors.New("queue: a blob directory is for a hub running alone: replicas keep blobs in JetStream")
		}
		if dir, err = blob.NewDir(opts.BlobDir); err != nil {
			return nil, fmt.Errorf("queue: %w", err)
		}
	}
	if opts.Cluster != nil {
		if err := refuseQueuedFile(ctx, opts.File); err != nil {
			return nil, err
		}
	}
	if opts.External != nil {
		q.nc, err = connectExternal(opts.External)
	} else {
		q.srv, q.nc, err = startEmbedded(opts)
	}
	if err != nil {
		return nil, err
	}
	if q.js, err = jetstream.New(q.nc); err != nil {
		q.Close()
		return nil, fmt.Errorf("queue: %w", err)
	}
	if err := q.setup(ctx); err != nil {
		q.Close()
		return nil, err
	}
	if dir != nil {
		q.blobs = files{dir}
	}
	if !opts.shared() {
		if q.file, err = openFile(ctx, opts.File, q.log); err != nil {
			q.Close()
			return nil, err
		}
		if err := q.moveShards(ctx); err != nil {
			q.Close()
			return nil, err
		}
	}
	return q, nil
}

// startEmbedded starts the JetStream server in the hub's process (alone,
// or as a replica of opts.Cluster) and connects to it in process.
func startEmbedded(opts Options) (*server.Server, *nats.Conn, error) {
	so := &server.Options{
		ServerName: "taxlink-hub",
		JetStream:  true,
		StoreDir:   opts.StoreDir,
		// Every write reaches the disk before JetStream acknowledges it: the
		// default would sync only every two minutes.
		SyncAlways: true,
		DontListen: true,
		NoSigs:     true,
		MaxPayload: 1 << 20,
		// One delivery consumer per recipient: 1,788 local governments,
		// beyond the server's default of 1,000 consumers per stream.
		JetStreamLimits: server.JSLimitOpts{DefaultMaxConsumers: -1},
	}
	if c := opts.Cluster; c != nil {
		if err := clusterOptions(so, c); err != nil {
			return nil, nil, err
		}
	}
	srv, err := server.NewServer(so)
	if err != nil {
		return nil, nil, fmt.Errorf("queue: start JetStream: %w", err)
	}
	if opts.Cluster != nil {
		srv.SetLogger(natsLogger{opts.Logger}, false, false)
	}
	srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		return nil, nil, errors.New("queue: JetStream did not become ready within 30s")
	}
	nc, err := nats.Connect("", nats.InProcessServer(srv), nats.Name("taxlink-hub"))
	if err != nil {
		srv.Shutdown()
		return nil, nil, fmt.Errorf("queue: connect to JetStream: %w", err)
	}
	return srv, nc, nil
}

// connectExternal connects to an external JetStream cluster over mutual
// TLS, reconnecting for as long as the hub runs.
func connectExternal(e *External) (*nats.Conn, error) {
	if e.URL == "" || e.TLS == nil {
		return nil, errors.New("queue: an external JetStream needs its URL and TLS")
	}
	nc, err := nats.Connect(e.URL, nats.Secure(e.TLS), nats.Name("taxlink-hub"),
		nats.MaxReconnects(-1), nats.RetryOnFailedConnect(false))
	if err != nil {
		return nil, fmt.Errorf("queue: connect to JetStream at %s: %w", e.URL, err)
	}
	return nc, nil
}

func (q *Queue) setup(ctx context.Context) error {
	var streams []jetstream.StreamConfig
	for n := range queueShards {
		if !q.opts.shared() {
			break // a hub alone queues in its file
		}
		name, subjects := shard(n)
		streams = append(streams, jetstream.StreamConfig{
			Name:       name,
			Subjects:   []string{subjects},
			Retention:  jetstream.WorkQueuePolicy,
			Storage:    jetstream.FileStorage,
			Duplicates: q.opts.DuplicateWindow,
			MaxMsgSize: 1 << 20,
		})
	}
	streams = append(streams, jetstream.StreamConfig{
		Name:       blobStream,
		Subjects:   []string{"b.>"},
		Retention:  jetstream.LimitsPolicy,
		Storage:    jetstream.FileStorage,
		Duplicates: q.opts.DuplicateWindow,
		MaxMsgSize: 1 << 20,
		// A direct get answers with the chunk's bytes as they are; the
		// stream API's answer is JSON with the chunk in base64, whose
		// encoding and parsing took a third of the hub's CPU while it
		// delivered large envelopes (docs/benchmarks.md).
		AllowDirect: true,
	})
	if q.opts.shared() {
		streams = append(streams, receiptStreamConfig(q.opts.DuplicateWindow))
	}
	return q.retry(ctx, func(ctx context.Context) error { return q.create(ctx, streams) })
}

// retry calls f until it succeeds; in a cluster, for up to 2 minutes: a
// new cluster has no meta leader for its first seconds, and a replica that
// restarts waits for the others. Each call has 5 s, since a request made
// before the meta leader exists is never answered.
func (q *Queue) retry(ctx context.Context, f func(context.Context) error) error {
	if !q.opts.shared() {
		return f(ctx)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := f(actx)
		cancel()
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		q.log.Info("waiting for the JetStream cluster", "err", err)
		pause.For(ctx, time.Second)
	}
}

// CreateStream creates or updates a stream on the queue's storage, with
// its replication, for other state that must survive as the queues do
// (the cluster's ledger).
func (q *Queue) CreateStream(ctx context.Context, sc jetstream.StreamConfig) (jetstream.Stream, error) {
	sc.Replicas = q.opts.replicas()
	var st jetstream.Stream
	err := q.retry(ctx, func(ctx context.Context) error {
		var err error
		st, err = q.js.CreateOrUpdateStream(ctx, sc)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("queue: create stream %s: %w", sc.Name, err)
	}
	return st, nil
}

func (q *Queue) create(ctx context.Context, streams []jetstream.StreamConfig) error {
	for _, sc := range streams {
		sc.Replicas = q.opts.replicas()
		st, err := q.js.CreateOrUpdateStream(ctx, sc)
		if err != nil {
			return fmt.Errorf("queue: create stream %s: %w", sc.Name, err)
		}
		if sc.Name == blobStream {
			q.blobs = &chunks{js: q.js, bs: st}
		}
	}
	// A hub alone keeps its acceptance receipts in a file of its own
	// (acceptance.DB); the bucket of an earlier version is kept until
	// MoveAccepted empties it.
	if !q.opts.shared() {
		kv, err := q.js.KeyValue(ctx, acceptedKV)
		switch {
		case err == nil:
			q.kv = kv
		case !errors.Is(err, jetstream.ErrBucketNotFound):
			return fmt.Errorf("queue: look for bucket %s: %w", acceptedKV, err)
		}
		return nil
	}
	kv, err := q.js.CreateOrUpdateKeyValue(ctx, acceptedBucket(q.opts.replicas()))
	if err != nil {
		return fmt.Errorf("queue: create bucket %s: %w", acceptedKV, err)
	}
	q.kv = kv
	return nil
}

// JetStream returns the connection to the embedded server, for the
// streams made with CreateStream.
func (q *Queue) JetStream() jetstream.JetStream { return q.js }

// Dir returns the directory the queue writes to: the entries file's for a
// hub alone, JetStream's for a shared queue.
func (q *Queue) Dir() string {
	if q.file != nil {
		return filepath.Dir(q.opts.File)
	}
	return q.opts.StoreDir
}

// Close stops the embedded server after the pending writes, and closes
// the entries file.
func (q *Queue) Close() {
	if q.nc != nil {
		q.nc.Close()
	}
	if q.srv != nil {
		q.srv.Shutdown()
		q.srv.WaitForShutdown()
	}
	if q.file != nil {
		q.file.close()
	}
}

// Token turns a participant ID into a subject token ("lg:011002" →
// "lg_011002"). Participant IDs never contain '_'.
func Token(id string) string {
	b := []byte(id)
	for i, c := range b {
		if c == ':' || c == '.' {
			b[i] = '_'
		}
	}
	return string(b)
}

// Enqueue durably stores an envelope for recipient: its preamble (magic,
// header, signature) and size bytes of ciphertext read from ct. It returns
// the queue sequence number. If the same id was enqueued within the
// duplicate window, nothing new is stored and the original sequence is
// returned with dup set. When ct fails (a digest mismatch found by a
// verifying reader, a cut connection) nothing is queued and the error is
// returned.
func (q *Queue) Enqueue(ctx context.Context, recipient, id string, preamble []byte, ct io.Reader, size int64) (seq uint64, dup bool, err error) {
	tok := Token(recipient)
	var data []byte
	var ref string // the blob's reference, when not inline
	if size <= int64(q.opts.InlineMax) {
		buf := bytes.NewBuffer(make([]byte, 0, len(preamble)+int(size)))
		buf.Write(preamble)
		if _, err := io.Copy(buf, ct); err != nil {
			return 0, false, fmt.Errorf("queue: read ciphertext: %w", err)
		}
		data = buf.Bytes()
	} else {
		if ref, err = q.blobs.Put(ctx, tok+"."+id, ct); err != nil {
			return 0, false, err
		}
		data = preamble
	}
	if q.file != nil {
		seq, dup, err = q.file.put(ctx, tok, id, time.Now(), data, ref)
	} else {
		seq, dup, err = q.publish(ctx, tok, id, data, ref)
	}
	if dup {
		// The entry of an earlier attempt names its own blob: this
		// attempt's is named by none.
		q.removeBlob(ctx, &Item{ID: id, ref: ref})
	}
	return seq, dup, err
}

// publish stores an entry in the work-queue stream of a shared queue.
func (q *Queue) publish(ctx context.Context, tok, id string, data []byte, ref string) (seq uint64, dup bool, err error) {
	_, subj := shardOf(tok)
	msg := nats.NewMsg(subj)
	msg.Header.Set(jetstream.MsgIDHeader, id)
	if ref != "" {
		msg.Header.Set(blobHeader, ref)
	}
	msg.Data = data
	// A sender that goes away (its connection cut, its process killed)
	// must not cut the wait for the entry's answer: with the outcome
	// unknown, the entry may have landed and name this attempt's blob.
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), enqueueTimeout)
	defer cancel()
	ack, err := q.js.PublishMsg(pctx, msg)
	if err != nil {
		// The entry may have landed all the same: its blob stays. A
		// retry finds it (duplicate) and its acceptance completes.
		return 0, false, fmt.Errorf("queue: enqueue: %w", err)
	}
	return ack.Sequence, ack.Duplicate, nil
}

// enqueueTimeout bounds the wait for a queue entry's answer.
const enqueueTimeout = 15 * time.Second

// Item is one queued envelope handed to a consumer.
type Item struct {
	ID   string
	Seq  uint64
	data []byte // the whole wire envelope, or its preamble with a blob
	ref  string // the blob holding the ciphertext, or ""
	q    *Queue
}

// Body returns the whole wire envelope, its blob streamed so that a big
// envelope is never held whole in memory.
func (it *Item) Body(ctx context.Context) (io.ReadCloser, error) {
	if it.ref == "" {
		return io.NopCloser(bytes.NewReader(it.data)), nil
	}
	b, err := it.q.blobs.Open(ctx, it.ref)
	if err != nil {
		return nil, fmt.Errorf("queue: envelope %s: %w", it.ID, err)
	}
	return struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(it.data), b), b}, nil
}

// Handler delivers one item; it returns nil once the item is delivered and
// its outcome durable elsewhere, and only then is the item removed. It
// should retry on its own and return an error only when ctx ends.
type Handler func(ctx context.Context, it *Item) error

// ErrIdle is what Consume returns when the recipient's queue stayed
// empty for the idle time it was given.
var ErrIdle = errors.New("queue: nothing to deliver")

// Consume runs the delivery loop of one recipient until ctx ends, calling h
// for up to parallel items at a time, oldest first; an item h handled is
// removed. Each recipient has its own loop (and, in a shared queue, its
// own durable consumer), so a recipient that does not answer holds up
// only itself.
//
// For a hub alone, an item a previous loop held and did not finish (its
// ctx ended, its process was killed) is handed out again at once: the
// node's idempotent recording absorbs the repeat. With idle > 0, Consume
// returns ErrIdle once no item has come for idle and none is being
// handled. An item queued after that waits until a new Consume takes it:
// whoever enqueues must see that one runs. The replicas of a shared queue
// share the consumer and get no idle stop; what a killed replica held
// comes back after the ack timeout.
func (q *Queue) Consume(ctx context.Context, recipient string, parallel int, idle time.Duration, h Handler) error {
	if q.file != nil {
		return q.file.consume(ctx, q, Token(recipient), parallel, idle, h)
	}
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	defer wg.Wait()
	for ctx.Err() == nil {
		err := q.pull(ctx, recipient, parallel, sem, &wg, h)
		if err != nil && ctx.Err() == nil {
			q.log.Warn("queue pull failed", "recipient", recipient, "err", err)
			pause.For(ctx, time.Second)
		}
	}
	return ctx.Err()
}

// pull hands the recipient's queued items of a shared queue to h until ctx
// ends or the pull fails (a replica lost, the consumer moved: Consume then
// starts a new one).
func (q *Queue) pull(ctx context.Context, recipient string, parallel int, sem chan struct{}, wg *sync.WaitGroup, h Handler) error {
	tok := Token(recipient)
	stream, subj := shardOf(tok)
	cons, err := q.js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{
		Durable:       "d_" + tok,
		FilterSubject: subj,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxAckPending: 4 * parallel,
		MaxDeliver:    -1,
		Replicas:      q.opts.replicas(),
		// The consumer's state need not outlive the process: an
		// acknowledged envelope leaves the work queue stream itself, an
		// unacknowledged one stays there and is delivered again (the node
		// records idempotently). Kept on disk, every acknowledgement
		// rewrote and synced a state file per consumer.
		MemoryStorage: true,
	})
	if err != nil {
		return fmt.Errorf("queue: consumer for %s: %w", recipient, err)
	}
	// A continuous pull: an idle recipient costs one pending request on
	// the server, not a request a second (1,788 recipients).
	iter, err := cons.Messages(jetstream.PullMaxMessages(parallel))
	if err != nil {
		return fmt.Errorf("queue: pull for %s: %w", recipient, err)
	}
	stop := context.AfterFunc(ctx, iter.Stop)
	defer stop()
	defer iter.Stop()
	for ctx.Err() == nil {
		msg, err := iter.Next()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		it, err := q.item(msg)
		if err != nil {
			// A queue entry this hub cannot read is kept and retried
			// rather than dropped; it will show as a stuck backlog.
			q.log.Error("unreadable queue entry", "recipient", recipient, "err", err)
			_ = msg.NakWithDelay(time.Minute)
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			q.handle(ctx, msg, it, h)
		}()
	}
	return nil
}

func (q *Queue) handle(ctx context.Context, msg jetstream.Msg, it *Item, h Handler) {
	// Keep the message ours while the handler retries.
	progress, done := context.WithCancel(ctx)
	go func() {
		for pause.For(progress, ackWait/3) {
			_ = msg.InProgress()
		}
	}()
	err := h(ctx, it)
	done()
	if err != nil {
		return // ctx ended: redelivered after a restart
	}
	if err := msg.DoubleAck(context.WithoutCancel(ctx)); err != nil {
		q.log.Warn("ack failed; the delivery will repeat and be deduplicated", "id", it.ID, "err", err)
		return
	}
	q.removeBlob(ctx, it)
}

// removeBlob removes the blob of an entry that is gone (delivered, or a
// repeated attempt's); left behind, a blob is found again by SweepBlobs.
func (q *Queue) removeBlob(ctx context.Context, it *Item) {
	if it.ref == "" {
		return
	}
	if err := q.blobs.Remove(context.WithoutCancel(ctx), it.ref); err != nil {
		q.log.Warn("removing the blob of an entry that is gone failed", "id", it.ID, "err", err)
	}
}

func (q *Queue) item(msg jetstream.Msg) (*Item, error) {
	md, err := msg.Metadata()
	if err != nil {
		return nil, err
	}
	return &Item{ID: msg.Headers().Get(jetstream.MsgIDHeader), Seq: md.Sequence.Stream, data: msg.Data(), ref: msg.Headers().Get(blobHeader), q: q}, nil
}

// Backlog returns the number of envelopes queued for recipient and not yet
// delivered.
func (q *Queue) Backlog(ctx context.Context, recipient string) (uint64, error) {
	if q.file != nil {
		return q.file.backlog(Token(recipient)), nil
	}
	stream, subj := shardOf(Token(recipient))
	s, err := q.js.Stream(ctx, stream)
	if err != nil {
		return 0, fmt.Errorf("queue: %w", err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subj))
	if err != nil {
		return 0, fmt.Errorf("queue: %w", err)
	}
	return info.State.Subjects[subj], nil
}

// Total returns the number of envelopes queued for all recipients.
func (q *Queue) Total(ctx context.Context) (uint64, error) {
	if q.file != nil {
		return q.file.sum(), nil
	}
	var total uint64
	for n := range queueShards {
		name, _ := shard(n)
		// Looking a stream up fetches its state: no second request.
		s, err := q.js.Stream(ctx, name)
		if err != nil {
			return 0, fmt.Errorf("queue: %w", err)
		}
		total += s.CachedInfo().State.Msgs
	}
	return total, nil
}

// Backlogs returns the number of envelopes queued per recipient, for every
// recipient with any, in one request.
func (q *Queue) Backlogs(ctx context.Context) (map[string]uint64, error) {
	if q.file != nil {
		return q.file.backlogs(), nil
	}
	out := make(map[string]uint64)
	for n := range queueShards {
		name, subjects := shard(n)
		s, err := q.js.Stream(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("queue: %w", err)
		}
		info, err := s.Info(ctx, jetstream.WithSubjectFilter(subjects))
		if err != nil {
			return nil, fmt.Errorf("queue: %w", err)
		}
		for subj, c := range info.State.Subjects {
			// q.<shard>.<token>
			out[subj[strings.LastIndexByte(subj, '.')+1:]] = c
		}
	}
	return out, nil
}

// Oldest returns when the oldest envelope queued for the recipient whose
// subject token is tok was stored, or false if none is queued.
func (q *Queue) Oldest(ctx context.Context, tok string) (time.Time, bool, error) {
	if q.file != nil {
		return q.file.oldest(ctx, tok)
	}
	stream, subj := shardOf(tok)
	s, err := q.js.Stream(ctx, stream)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("queue: %w", err)
	}
	m, err := s.GetMsg(ctx, 1, jetstream.WithGetMsgSubject(subj))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("queue: %w", err)
	}
	return m.Time, true, nil
}

// clusterOptions sets the route options of a replica.
func clusterOptions(so *server.Options, c *Cluster) error {
	if c.Name == "" || c.ServerName == "" || c.TLS == nil || len(c.Routes) == 0 {
		return errors.New("queue: a cluster needs a name, a server name, route TLS and routes")
	}
	host, port, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return fmt.Errorf("queue: cluster listen %q: %w", c.Listen, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return fmt.Errorf("queue: cluster listen %q: bad port", c.Listen)
	}
	routes := make([]string, len(c.Routes))
	for i, r := range c.Routes {
		if _, _, err := net.SplitHostPort(r); err != nil {
			return fmt.Errorf("queue: cluster route %q: %w", r, err)
		}
		routes[i] = "nats-route://" + r
	}
	so.ServerName = c.ServerName
	// The server starts its routes only once its client listener runs:
	// the hub itself connects in process, so the listener takes only the
	// hub's own certificate, on loopback, on a port of the system's choice.
	so.DontListen = false
	so.Host, so.Port = "127.0.0.1", -1
	so.TLSConfig, so.TLSVerify, so.TLSTimeout = c.TLS, true, 5
	so.Cluster = server.ClusterOpts{
		Name: c.Name, Host: host, Port: p, TLSConfig: c.TLS, TLSTimeout: 5,
		// A route between replicas is a long-lived link: it must come back
		// after a replica restarts, however long it was away.
		ConnectRetries: -1,
	}
	so.Routes = server.RoutesFromStr(strings.Join(routes, ","))
	return nil
}

// natsLogger passes the embedded server's warnings and errors to the
// hub's log (a cluster's routes and elections are worth seeing).
type natsLogger struct{ log *slog.Logger }

func (l natsLogger) Noticef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l natsLogger) Warnf(format string, v ...any) {
	l.log.Warn("jetstream: " + fmt.Sprintf(format, v...))
}
func (l natsLogger) Fatalf(format string, v ...any) {
	l.log.Error("jetstream: " + fmt.Sprintf(format, v...))
}
func (l natsLogger) Errorf(format string, v ...any) {
	l.log.Error("jetstream: " + fmt.Sprintf(format, v...))
}
func (l natsLogger) Debugf(format string, v ...any) {}
func (l natsLogger) Tracef(format string, v ...any) {}

// SweepBlobs removes the blobs that no queue entry names and that were last
// written more than minAge ago: those of a hub killed between a blob's
// write and its entry's, or between a delivery's acknowledgement and the
// removal of its blob, and those of an entry whose publication failed
// without telling whether it landed. minAge must exceed the time between a
// blob's last write and its entry's publication (enqueueTimeout). It
// returns how many it removed. Replicas of a cluster may sweep at once.
func (q *Queue) SweepBlobs(ctx context.Context, minAge time.Duration) (int, error) {
	return q.sweepBlobs(ctx, time.Now().Add(-minAge))
}

// sweepBlobs removes the blobs no entry names last written before before.
func (q *Queue) sweepBlobs(ctx context.Context, before time.Time) (int, error) {
	stale, err := q.blobs.stale(ctx, before)
	if err != nil {
		return 0, fmt.Errorf("queue: sweep blobs: %w", err)
	}
	// A blob's name is <recipient token>.<envelope ID>.<random>: only the
	// queues of recipients with stale blobs need reading.
	byTok := make(map[string][]string)
	for _, name := range stale {
		tok, _, _ := strings.Cut(name, ".")
		byTok[tok] = append(byTok[tok], name)
	}
	removed := 0
	for tok, names := range byTok {
		named, err := q.blobsNamed(ctx, tok)
		if err != nil {
			return removed, fmt.Errorf("queue: sweep blobs: %w", err)
		}
		for _, name := range names {
			if named[name] {
				continue
			}
			if err := q.blobs.Remove(ctx, q.blobs.removable(name)); err != nil {
				return removed, fmt.Errorf("queue: sweep blobs: %w", err)
			}
			removed++
		}
	}
	return removed, nil
}

// blobsNamed returns the names of the blobs named by the entries queued
// for the recipient whose subject token is tok.
func (q *Queue) blobsNamed(ctx context.Context, tok string) (map[string]bool, error) {
	if q.file != nil {
		refs, err := q.file.refs(ctx, tok)
		named := make(map[string]bool, len(refs))
		for _, ref := range refs {
			named[q.blobs.name(ref)] = true
		}
		return named, err
	}
	stream, subj := shardOf(tok)
	s, err := q.js.Stream(ctx, stream)
	if err != nil {
		return nil, err
	}
	named := make(map[string]bool)
	for seq := uint64(1); ; {
		m, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subj))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return named, nil
		}
		if err != nil {
			return nil, err
		}
		if ref := m.Header.Get(blobHeader); ref != "" {
			named[q.blobs.name(ref)] = true
		}
		seq = m.Sequence + 1
	}
}

// BlobBytes returns the bytes of the blobs the queue holds: the files of a
// hub running alone, the chunk stream of replicas.
func (q *Queue) BlobBytes(ctx context.Context) (int64, error) {
	n, err := q.blobs.bytes(ctx)
	if err != nil {
		return 0, fmt.Errorf("queue: %w", err)
	}
	return n, nil
}

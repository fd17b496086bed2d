//! Every fixed size and default limit in one place, so memory per session is
//! visible at a glance and config defaults have a single source.

use std::time::Duration;

/// Longest SMTP or POP3 command line we buffer, CRLF included. RFC 5321 asks
/// for 512; extensions (SIZE, BODY, SMTPUTF8, AUTH) make a little more useful.
pub const MAX_COMMAND_LINE: usize = 1024;

/// Longest SASL line (an AUTH command or a response to its challenge),
/// CRLF included: RFC 4954 §4 asks servers to take 12,288 octets. Only such
/// a line is buffered beyond [`MAX_COMMAND_LINE`], on the heap, while it lasts.
pub const MAX_SASL_LINE: usize = 12_288 + 2;

/// Longest line of a message, line end excluded (RFC 5322 §2.1.1).
pub const MAX_MESSAGE_LINE: usize = 998;

/// Longest mail address (RFC 5321 §4.5.3.1.3 path limit).
pub const MAX_ADDRESS: usize = 256;

/// Longest HELO/EHLO argument we remember.
pub const MAX_HELO: usize = 255;

/// Socket read buffer per session.
pub const READ_CHUNK: usize = 8 * 1024;

/// Body bytes collected before one write to the spool file.
pub const WRITE_CHUNK: usize = 32 * 1024;

/// Threads of the blocking pool (file I/O, fsync, password hashing); it
/// would otherwise grow to 500 under bursts, each thread keeping its stack
/// and, under glibc, a malloc arena. Eight keep a card's queue full, and
/// bound the memory of password checks (each hash takes 19 MiB) at once.
pub const BLOCKING_THREADS: usize = 8;

/// The longest piece of a line `import`, `export` and `sendmail` hold:
/// longer lines pass through in pieces.
pub const MAILIO_PIECE: usize = 64 * 1024;

/// How often the server looks in the maildrop besides when `sendmail`
/// signals it (a signal lost, a message left by a crash).
pub const MAILDROP_POLL: Duration = Duration::from_secs(10);

/// Reply bytes buffered before a flush (pipelined replies are batched).
pub const REPLY_BUFFER: usize = 2048;

/// File read chunk for RETR/TOP.
pub const RETR_CHUNK: usize = 16 * 1024;

/// POP3 output queued before a write: pipelined RETRs of small messages
/// share one write instead of three each. The queue holds at most this
/// plus one stuffed chunk (2 × RETR_CHUNK).
pub const POP3_OUTPUT: usize = 64 * 1024;

pub const DEFAULT_MAX_MESSAGE_SIZE: u64 = 25 * 1024 * 1024;
pub const DEFAULT_MAX_RECIPIENTS: usize = 100;
pub const DEFAULT_MAX_SESSIONS: usize = 100;
pub const DEFAULT_MAX_ERRORS: u32 = 10;
/// Sessions one client address may hold at once (Postfix's default too).
pub const DEFAULT_SESSIONS_PER_ADDRESS: usize = 50;
/// Failed logins from one address (within THROTTLE_MEMORY) before its
/// logins are refused outright until the record expires.
pub const DEFAULT_LOGIN_FAILURES: u32 = 10;
/// RFC 5321 §4.5.3.2: at least 5 minutes for commands, 10 for DATA blocks.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(300);
pub const DEFAULT_DATA_TIMEOUT: Duration = Duration::from_secs(600);
/// A whole message may take this many data timeouts (each read still
/// gets one): enough for 25 MiB over a slow uplink, not for a drip-feed.
pub const DATA_DEADLINE_FACTOR: u32 = 2;
/// RFC 1939 §3: at least 10 minutes of inactivity before autologout.
pub const DEFAULT_POP3_TIMEOUT: Duration = Duration::from_secs(600);

/// Pause before answering a first failed login; it doubles with each
/// further failure from the same address, up to the maximum.
pub const FAILED_LOGIN_DELAY: Duration = Duration::from_millis(800);
pub const MAX_FAILED_LOGIN_DELAY: Duration = Duration::from_secs(15);
/// Failed logins at one account (from anywhere, within THROTTLE_MEMORY),
/// as a multiple of the per-address limit, before guesses at it are refused.
pub const USER_FAILURES_FACTOR: u32 = 5;
/// Addresses (and accounts) remembered for login throttling, and for how long.
pub const THROTTLE_ENTRIES: usize = 4096;
pub const THROTTLE_MEMORY: Duration = Duration::from_secs(15 * 60);

/// Successful logins remembered (keyed HMAC, RAM only), and for how long.
pub const LOGIN_CACHE_ENTRIES: usize = 256;
pub const LOGIN_CACHE_TTL: Duration = Duration::from_secs(3600);

/// Time a client has for its TLS handshake: a real one needs a round trip
/// or two, and one that never says hello must not hold a session for long.
pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed for a TLS handshake with another server (outbound).
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Time allowed for a TLS close_notify to leave at the end of a session.
pub const TLS_CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest From: header field we examine on submission; longer ones are refused.
pub const MAX_FROM_HEADER: usize = 2048;
/// To: and Cc: bytes read for the recipient spam rule; past it, the
/// addresses in the first part are enough to count.
pub const MAX_RECIPIENT_HEADERS: usize = 4096;

/// Traffic counters are written to flash at most this often.
pub const STATS_SAVE_INTERVAL: Duration = Duration::from_secs(60);
/// Days of per-day message counts kept (the admin page charts 30).
pub const STATS_DAYS_KEPT: usize = 32;

/// Age after which a file in a mailbox's `tmp/` counts as abandoned
/// (qmail's 36 hours).
pub const MAILDIR_TMP_GRACE: Duration = Duration::from_secs(36 * 3600);

/// How long sessions in DATA may keep going after a shutdown request.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// How much longer than the grace the server waits for the last sessions
/// to close before it stops anyway.
pub const SHUTDOWN_SLACK: Duration = Duration::from_secs(5);

/// A listener whose accept fails (out of descriptors and the like) pauses
/// this long before trying again, instead of spinning.
pub const ACCEPT_RETRY_PAUSE: Duration = Duration::from_millis(100);

/// Client addresses tracked for per-address limits before idle ones are
/// swept out, and the window over which their connections are counted.
pub const TRACKED_CLIENTS: usize = 4096;
pub const CONNECTION_RATE_WINDOW: Duration = Duration::from_secs(60);

/// The log ring keeps between this and twice this on flash.
pub const LOG_RING_BYTES: u64 = 64 * 1024;

/// Longest user name (RFC 5321's local-part limit) and domain we accept.
pub const MAX_USER_NAME: usize = 64;
pub const MAX_DOMAIN: usize = 253;

/// Received: headers counted for loop detection (RFC 5321 §6.3).
pub const MAX_RECEIVED_HEADERS: usize = 50;

/// Entries each member's address book keeps (on flash: the address and
/// a display name; in RAM while in use: 8 bytes each).
pub const ADDRESS_BOOK_ENTRIES: usize = 2000;
/// Correspondents learned between two saves of a book (once a minute);
/// past it the oldest of them are not written.
pub const ADDRESS_BOOK_UNSAVED: usize = 256;
/// Longest display name an address book keeps, in characters.
pub const ADDRESS_BOOK_NAME: usize = 64;

/// Lines in one reply of another server (an EHLO reply has one per
/// extension).
pub const MAX_REPLY_LINES: usize = 64;

/// Outbound delivery: connecting, and waiting for each reply (RFC 5321
/// §4.5.3.2 suggests minutes; a stuck peer must not hold a slot for long).
pub const OUTBOUND_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
pub const OUTBOUND_COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
/// Fetching from an upstream mailbox: each read's wait (a dead upstream
/// never holds a run for longer), and the longest response line kept.
pub const FETCH_READ_TIMEOUT: Duration = Duration::from_secs(120);
pub const FETCH_LINE: usize = 8 * 1024;
/// Bytes read from another server at a time.
pub const OUTBOUND_READ_BUFFER: usize = 4096;
/// Sending the message and hearing the answer to its final dot.
pub const OUTBOUND_DATA_TIMEOUT: Duration = Duration::from_secs(600);

/// DNS answers remembered (src/dns/cache.rs), the largest one remembered,
/// and the bounds on how long: at least the floor (a TTL of 0 would make
/// one SPF check ask the same thing again), at most the ceiling (a record
/// fixed at its source is seen within the hour).
pub const DNS_CACHE_ENTRIES: usize = 512;
pub const DNS_CACHE_MAX_ANSWER: usize = 4096;
pub const DNS_CACHE_MIN_TTL: Duration = Duration::from_secs(10);
pub const DNS_CACHE_MAX_TTL: Duration = Duration::from_secs(3600);
/// Time one DNS question may take (UDP, then TCP when truncated).
pub const DNS_QUERY_TIMEOUT: Duration = Duration::from_secs(5);
/// A UDP question without an answer after this is sent again, until the
/// time limit (a lost datagram costs a second, not the whole limit).
pub const DNS_UDP_RESEND: Duration = Duration::from_secs(1);

/// SPF (RFC 7208 §4.6.4): terms that ask DNS, lookups that find nothing,
/// MX names per `mx`, PTR names looked at per `ptr` or %{p}.
pub const SPF_MAX_DNS_TERMS: usize = 10;
pub const SPF_MAX_VOID_LOOKUPS: usize = 2;
pub const SPF_MAX_MX_NAMES: usize = 10;
pub const SPF_MAX_PTR_NAMES: usize = 10;
/// Distinct DNS questions one SPF check may ask: the limits above allow
/// about 1 + 10 × 11 + 11 (%{p}) + 1 (exp); past this it is a permerror.
pub const SPF_MAX_QUESTIONS: usize = 128;
/// Time one whole SPF check may take (RFC 7208 §4.6.4 asks for at least
/// 20 seconds); past it the result is temperror.
pub const SPF_TIMEOUT: Duration = Duration::from_secs(20);

/// DKIM: header section bytes kept per message for signing and verifying.
/// Past it, signing is skipped ("header section too large") and
/// verification gives `neutral` with that reason; the body still streams.
pub const MAX_DKIM_HEADER_SECTION: usize = 64 * 1024;
/// DKIM-Signature fields verified per message; later ones are ignored.
pub const MAX_DKIM_SIGNATURES: usize = 5;
/// An old DKIM key's record stays published this long after a rotation,
/// so mail signed just before it can still be verified on arrival.
pub const DKIM_OLD_KEY_GRACE: Duration = Duration::from_secs(7 * 86_400);

/// Longest DMARC TXT record read (its strings joined); real ones are a few
/// hundred bytes.
pub const DMARC_MAX_RECORD: usize = 2048;
/// Report URIs kept from a DMARC record's `rua` or `ruf`.
pub const DMARC_MAX_REPORT_URIS: usize = 8;

/// HTTP: the request line and header fields together (past it: 431, or
/// 414 when the request line alone does not fit), the header fields
/// counted, and the body (past it: 413). The pages are small forms and
/// mail programs' set-up requests; nothing larger is ever needed.
pub const MAX_HTTP_HEAD: usize = 16 * 1024;
pub const MAX_HTTP_HEADERS: usize = 64;
pub const MAX_HTTP_BODY: usize = 64 * 1024;
/// Socket read buffer of a web session.
pub const HTTP_READ_CHUNK: usize = 4 * 1024;
/// Time a client has to send a whole request (or, kept alive, to begin
/// the next one): a browser needs milliseconds, a drip-feeding client is
/// cut off, and the largest body needs only 6.4 KiB/s.
pub const HTTP_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a client has to take a response before it is cut off.
pub const HTTP_WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// After refusing a request, how long and how much of what the client
/// still sends is read and dropped before the connection closes (closing
/// with its bytes unread would reset the connection and lose the answer).
pub const HTTP_LINGER: Duration = Duration::from_secs(2);
pub const HTTP_LINGER_BYTES: usize = 64 * 1024;
/// Requests one kept-alive connection may make before it is closed.
pub const MAX_HTTP_REQUESTS_PER_CONNECTION: u32 = 100;
/// How long browsers keep to HTTPS once told to (HSTS max-age, a year).
pub const HSTS_MAX_AGE: Duration = Duration::from_secs(365 * 86_400);

/// Largest Autodiscover request read (Outlook's is about 400 bytes).
pub const AUTODISCOVER_MAX_REQUEST: usize = 4096;
/// Elements an Autodiscover request may nest (it uses three).
pub const AUTODISCOVER_MAX_DEPTH: usize = 8;

/// How much of an incoming `Authentication-Results:` field is held back
/// to read its authserv-id (which comes first) before it is passed on or
/// dropped.
pub const AUTHSERV_ID_LOOKAHEAD: usize = 512;

/// Away messages (RFC 3834): one sender is answered at most once in this
/// long (its §3.1.1 suggests 7 days), and each member remembers this many
/// answered senders (16 bytes each), the oldest forgotten first.
pub const AWAY_REPLY_INTERVAL: Duration = Duration::from_secs(7 * 86_400);
pub const AWAY_ANSWERED_SENDERS: usize = 1000;
/// An away message's subject and text as a member may set them.
pub const AWAY_MAX_SUBJECT: usize = 200;
pub const AWAY_MAX_TEXT: usize = 8 * 1024;
/// Header section bytes of an arriving message read to decide on an away
/// reply; fields past it count as absent (so To:/Cc: there get no reply).
pub const AWAY_HEADER_SECTION: usize = 32 * 1024;
/// Message-IDs of the original's References: kept in the reply's.
pub const AWAY_MAX_REFERENCES: usize = 20;

/// Web sessions (RAM only): how many are held at once (past it the least
/// recently used is ended), how long one lasts unused, and at most in all.
pub const MAX_WEB_SESSIONS: usize = 128;
pub const WEB_SESSION_IDLE: Duration = Duration::from_secs(30 * 60);
pub const WEB_SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Fields read from one submitted form (ours have at most six) and
/// cookies from one request.
pub const MAX_FORM_FIELDS: usize = 32;
pub const MAX_COOKIES: usize = 32;

/// ACME (src/acme): the largest response read from the service (a
/// certificate chain is a few KiB), the time one request may take, and
/// the time a whole order may take before it is given up and retried.
pub const ACME_MAX_RESPONSE: usize = 64 * 1024;
pub const ACME_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
pub const ACME_ORDER_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// Polling an authorization or order: the first wait, doubling up to the
/// last (a `Retry-After` from the service wins, up to the same maximum).
pub const ACME_POLL_FIRST: Duration = Duration::from_millis(250);
pub const ACME_POLL_MAX: Duration = Duration::from_secs(10);
/// After a failed attempt the next waits this long, doubling with each
/// further failure, up to a day.
pub const ACME_RETRY_FIRST: Duration = Duration::from_secs(60);
pub const ACME_RETRY_MAX: Duration = Duration::from_secs(24 * 3600);
/// badNonce answers retried in a row before the order fails.
pub const ACME_NONCE_RETRIES: u32 = 3;

/// The PROXY protocol header a proxy sends before the client's bytes:
/// a v1 line is at most 107 bytes with its CRLF (the spec's worst case);
/// a v2 header is 16 bytes, its address block (at most 216 bytes, two
/// UNIX paths), and TLVs (skipped, never kept) up to this many bytes.
pub const PROXY_V1_MAX_LINE: usize = 107;
pub const PROXY_V2_MAX_TLV_BYTES: usize = 512;
/// Bytes of a connection looked at (not taken) per read of the header:
/// a v1 line or a v2 header without TLVs is seen at once.
pub const PROXY_PEEK: usize = 256;

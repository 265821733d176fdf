// ChannelData load generator for the relay benchmark.
//
// Each flow is one UDP socket bound to a fixed local port whose allocation
// and channel were set up beforehand by a real TURN exchange (bench/setup-flows.ts,
// which closed its sockets so this program can bind the same ports: the
// 5-tuple is what identifies the allocation). Sends ChannelData with
// sendmmsg, round-robin over the flows, either as fast as possible (--rate 0)
// or paced to a total rate. With --echo, the peer sink echoes every packet
// back through the relay and this program reports round-trip percentiles
// from the send timestamp carried in the payload.
//
// Usage: flood --server ADDR:PORT --flows PORT:CHAN[,PORT:CHAN...] --size BYTES
//              --seconds S [--rate PPS] [--batch N] [--echo [--dump FILE]] [--bind ADDR]
//              [--family 4|6]
// The address family follows --server (IPv6 as [ADDR]:PORT); --family makes
// the intent explicit and refuses a server address of the other family.
// Prints one JSON object on stdout.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_FLOWS 1024
#define MAX_BATCH 256
#define MAX_PKT 2048

struct flow {
  int fd;
  int port;
  int channel;
  uint64_t sent;
  uint64_t send_errors;
  uint64_t echoed;
};

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int parse_addr(const char *text, struct sockaddr_storage *ss, socklen_t *len) {
  char host[128];
  const char *colon = strrchr(text, ':');
  if (!colon || (size_t)(colon - text) >= sizeof host) return -1;
  memcpy(host, text, (size_t)(colon - text));
  host[colon - text] = 0;
  int port = atoi(colon + 1);
  char *h = host;
  if (h[0] == '[') { h++; h[strlen(h) - 1] = 0; }
  memset(ss, 0, sizeof *ss);
  struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
  if (inet_pton(AF_INET, h, &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET; a4->sin_port = htons((uint16_t)port); *len = sizeof *a4; return 0;
  }
  if (inet_pton(AF_INET6, h, &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6; a6->sin6_port = htons((uint16_t)port); *len = sizeof *a6; return 0;
  }
  return -1;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static void drain_echoes(struct flow *flows, int nflows, uint64_t *rtts, uint64_t *sents, uint64_t cap, uint64_t *nrtt) {
  static struct mmsghdr msgs[MAX_BATCH];
  static struct iovec iov[MAX_BATCH];
  static unsigned char bufs[MAX_BATCH][MAX_PKT];
  for (int i = 0; i < MAX_BATCH; i++) {
    iov[i].iov_base = bufs[i]; iov[i].iov_len = MAX_PKT;
    memset(&msgs[i].msg_hdr, 0, sizeof msgs[i].msg_hdr);
    msgs[i].msg_hdr.msg_iov = &iov[i]; msgs[i].msg_hdr.msg_iovlen = 1;
  }
  for (int f = 0; f < nflows; f++) {
    for (;;) {
      int n = recvmmsg(flows[f].fd, msgs, MAX_BATCH, MSG_DONTWAIT, NULL);
      if (n <= 0) break;
      uint64_t t = now_ns();
      for (int i = 0; i < n; i++) {
        // ChannelData header (4) + seq (8) + send time (8).
        if (msgs[i].msg_len < 20 || (bufs[i][0] & 0xc0) != 0x40) continue;
        uint64_t sent;
        memcpy(&sent, bufs[i] + 12, 8);
        flows[f].echoed++;
        if (*nrtt < cap && t >= sent) {
          sents[*nrtt] = sent;
          rtts[(*nrtt)++] = t - sent;
        }
      }
    }
  }
}

int main(int argc, char **argv) {
  const char *server = NULL, *flowspec = NULL, *bind_addr = NULL, *dump = NULL;
  int size = 100, batch = 64, echo = 0, family = 0;
  double seconds = 5, rate = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--server") && v) { server = v; i++; }
    else if (!strcmp(a, "--flows") && v) { flowspec = v; i++; }
    else if (!strcmp(a, "--bind") && v) { bind_addr = v; i++; }
    else if (!strcmp(a, "--size") && v) { size = atoi(v); i++; }
    else if (!strcmp(a, "--seconds") && v) { seconds = atof(v); i++; }
    else if (!strcmp(a, "--rate") && v) { rate = atof(v); i++; }
    else if (!strcmp(a, "--batch") && v) { batch = atoi(v); i++; }
    else if (!strcmp(a, "--family") && v) { family = atoi(v); i++; }
    else if (!strcmp(a, "--echo")) echo = 1;
    else if (!strcmp(a, "--dump") && v) { dump = v; i++; }
    else { fprintf(stderr, "flood: unknown argument %s\n", a); return 2; }
  }
  if (!server || !flowspec || size < 20 || size > MAX_PKT - 4 || batch < 1 || batch > MAX_BATCH) {
    fprintf(stderr, "flood: need --server, --flows, 20 <= --size <= %d, 1 <= --batch <= %d\n", MAX_PKT - 4, MAX_BATCH);
    return 2;
  }
  struct sockaddr_storage srv;
  socklen_t srvlen;
  if (parse_addr(server, &srv, &srvlen) < 0) { fprintf(stderr, "flood: bad --server %s\n", server); return 2; }
  if ((family == 4 && srv.ss_family != AF_INET) || (family == 6 && srv.ss_family != AF_INET6) || (family != 0 && family != 4 && family != 6)) {
    fprintf(stderr, "flood: --server %s is not an IPv%d address\n", server, family);
    return 2;
  }

  static struct flow flows[MAX_FLOWS];
  int nflows = 0;
  char *spec = strdup(flowspec);
  for (char *tok = strtok(spec, ","); tok && nflows < MAX_FLOWS; tok = strtok(NULL, ",")) {
    int port = 0, chan = 0;
    if (sscanf(tok, "%d:%i", &port, &chan) != 2) { fprintf(stderr, "flood: bad flow %s\n", tok); return 2; }
    struct flow *fl = &flows[nflows++];
    fl->port = port; fl->channel = chan;
    fl->fd = socket(srv.ss_family, SOCK_DGRAM, 0);
    int one = 1, big = 8 << 20;
    setsockopt(fl->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fl->fd, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof big);
    setsockopt(fl->fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big);
    struct sockaddr_storage local;
    memset(&local, 0, sizeof local);
    socklen_t llen;
    if (srv.ss_family == AF_INET) {
      struct sockaddr_in *l = (struct sockaddr_in *)&local;
      l->sin_family = AF_INET; l->sin_port = htons((uint16_t)port);
      if (bind_addr) inet_pton(AF_INET, bind_addr, &l->sin_addr);
      llen = sizeof *l;
    } else {
      struct sockaddr_in6 *l = (struct sockaddr_in6 *)&local;
      l->sin6_family = AF_INET6; l->sin6_port = htons((uint16_t)port);
      if (bind_addr) inet_pton(AF_INET6, bind_addr, &l->sin6_addr);
      llen = sizeof *l;
    }
    if (bind(fl->fd, (struct sockaddr *)&local, llen) < 0) { fprintf(stderr, "flood: bind port %d: %s\n", port, strerror(errno)); return 1; }
    if (connect(fl->fd, (struct sockaddr *)&srv, srvlen) < 0) { fprintf(stderr, "flood: connect: %s\n", strerror(errno)); return 1; }
  }
  if (nflows == 0) { fprintf(stderr, "flood: no flows\n"); return 2; }

  // One prepared batch per flow: ChannelData header, then seq and send time
  // (written per packet in echo mode), then filler.
  int pkt = 4 + size;
  unsigned char *bufs = calloc((size_t)nflows * (size_t)batch, (size_t)pkt);
  struct mmsghdr *msgs = calloc((size_t)nflows * (size_t)batch, sizeof *msgs);
  struct iovec *iov = calloc((size_t)nflows * (size_t)batch, sizeof *iov);
  for (int f = 0; f < nflows; f++) {
    for (int i = 0; i < batch; i++) {
      size_t k = (size_t)f * (size_t)batch + (size_t)i;
      unsigned char *b = bufs + k * (size_t)pkt;
      b[0] = (unsigned char)(flows[f].channel >> 8); b[1] = (unsigned char)flows[f].channel;
      b[2] = (unsigned char)(size >> 8); b[3] = (unsigned char)size;
      memset(b + 20, 0xa5, (size_t)size - 16);
      iov[k].iov_base = b; iov[k].iov_len = (size_t)pkt;
      msgs[k].msg_hdr.msg_iov = &iov[k]; msgs[k].msg_hdr.msg_iovlen = 1;
    }
  }

  uint64_t cap = echo ? (uint64_t)(rate > 0 ? rate * seconds * 1.2 + 1024 : 4000000) : 0;
  uint64_t *rtts = echo ? malloc(cap * sizeof *rtts) : NULL;
  uint64_t *sents = echo ? malloc(cap * sizeof *sents) : NULL;
  uint64_t nrtt = 0, seq = 0, total = 0;
  uint64_t start = now_ns();
  uint64_t end = start + (uint64_t)(seconds * 1e9);
  int next = 0;
  for (;;) {
    uint64_t t = now_ns();
    if (t >= end) break;
    int n = batch;
    if (rate > 0) {
      double due = (double)(t - start) * 1e-9 * rate - (double)total;
      if (due < 1) {
        if (echo) drain_echoes(flows, nflows, rtts, sents, cap, &nrtt);
        struct timespec ts = { 0, 50000 };
        nanosleep(&ts, NULL);
        continue;
      }
      if (due < n) n = (int)due;
    }
    struct flow *fl = &flows[next];
    struct mmsghdr *m = msgs + (size_t)next * (size_t)batch;
    if (echo) {
      for (int i = 0; i < n; i++) {
        unsigned char *b = iov[(size_t)next * (size_t)batch + (size_t)i].iov_base;
        uint64_t s = ++seq, ts = now_ns();
        memcpy(b + 4, &s, 8);
        memcpy(b + 12, &ts, 8);
      }
    }
    int sent = sendmmsg(fl->fd, m, (unsigned)n, 0);
    if (sent > 0) { fl->sent += (uint64_t)sent; total += (uint64_t)sent; }
    else fl->send_errors++;
    next = (next + 1) % nflows;
    if (echo) drain_echoes(flows, nflows, rtts, sents, cap, &nrtt);
  }
  uint64_t elapsed = now_ns() - start;
  if (echo) {
    // Collect stragglers for a little while; anything later counts as lost.
    uint64_t stop = now_ns() + 300000000ull;
    while (now_ns() < stop) {
      drain_echoes(flows, nflows, rtts, sents, cap, &nrtt);
      struct timespec ts = { 0, 200000 };
      nanosleep(&ts, NULL);
    }
  }

  uint64_t errors = 0, echoed = 0;
  for (int f = 0; f < nflows; f++) { errors += flows[f].send_errors; echoed += flows[f].echoed; }
  printf("{\"sent\":%llu,\"elapsed_s\":%.6f,\"send_errors\":%llu,\"flows\":%d,\"size\":%d,\"family\":%d",
         (unsigned long long)total, (double)elapsed / 1e9, (unsigned long long)errors, nflows, size, srv.ss_family == AF_INET6 ? 6 : 4);
  printf(",\"per_flow\":[");
  for (int f = 0; f < nflows; f++) printf("%s%llu", f ? "," : "", (unsigned long long)flows[f].sent);
  printf("]");
  if (echo && dump) {
    // Each echo's send time (CLOCK_MONOTONIC ns) and round trip (ns), in arrival order: where in time the tail lies.
    FILE *f = fopen(dump, "w");
    if (!f) fprintf(stderr, "flood: --dump %s: %s\n", dump, strerror(errno));
    else {
      for (uint64_t i = 0; i < nrtt; i++) fprintf(f, "%llu %llu\n", (unsigned long long)sents[i], (unsigned long long)rtts[i]);
      fclose(f);
    }
  }
  if (echo) {
    qsort(rtts, nrtt, sizeof *rtts, cmp_u64);
    double p50 = nrtt ? (double)rtts[nrtt / 2] / 1000.0 : -1;
    double p99 = nrtt ? (double)rtts[(nrtt * 99) / 100] / 1000.0 : -1;
    printf(",\"echoed\":%llu,\"rtt_us\":{\"count\":%llu,\"p50\":%.1f,\"p99\":%.1f}",
           (unsigned long long)echoed, (unsigned long long)nrtt, p50, p99);
  }
  printf("}\n");
  return 0;
}

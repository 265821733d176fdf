// Peer-side counter for the relay benchmark: receives the relayed UDP
// datagrams with recvmmsg, counts packets and bytes per source (= per
// allocation's relayed address), optionally echoes each one back to its
// source so it returns through the relay to the client (round-trip mode).
// Runs until SIGTERM/SIGINT, then prints one JSON object on stdout.
//
// Usage: sink --bind ADDR:PORT [--echo]
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BATCH 256
#define MAX_PKT 2048

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

static uint64_t per_port[2][65536];

int main(int argc, char **argv) {
  const char *bind_spec = NULL;
  int echo = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--bind") && i + 1 < argc) bind_spec = argv[++i];
    else if (!strcmp(argv[i], "--echo")) echo = 1;
    else { fprintf(stderr, "sink: unknown argument %s\n", argv[i]); return 2; }
  }
  if (!bind_spec) { fprintf(stderr, "sink: need --bind ADDR:PORT\n"); return 2; }
  char host[128];
  const char *colon = strrchr(bind_spec, ':');
  if (!colon || (size_t)(colon - bind_spec) >= sizeof host) return 2;
  memcpy(host, bind_spec, (size_t)(colon - bind_spec));
  host[colon - bind_spec] = 0;
  char *h = host;
  if (h[0] == '[') { h++; h[strlen(h) - 1] = 0; }
  int port = atoi(colon + 1);

  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  socklen_t len;
  int family;
  struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
  if (inet_pton(AF_INET, h, &a4->sin_addr) == 1) { family = AF_INET; a4->sin_family = AF_INET; a4->sin_port = htons((uint16_t)port); len = sizeof *a4; }
  else if (inet_pton(AF_INET6, h, &a6->sin6_addr) == 1) { family = AF_INET6; a6->sin6_family = AF_INET6; a6->sin6_port = htons((uint16_t)port); len = sizeof *a6; }
  else { fprintf(stderr, "sink: bad address %s\n", h); return 2; }

  int fd = socket(family, SOCK_DGRAM, 0);
  int big = 32 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big);
  setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof big);
  struct timeval tv = { 0, 100000 };
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (bind(fd, (struct sockaddr *)&ss, len) < 0) { fprintf(stderr, "sink: bind: %s\n", strerror(errno)); return 1; }

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal; // no SA_RESTART: recvmmsg returns EINTR
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  fprintf(stderr, "sink: listening on %s\n", bind_spec);
  fflush(stderr);

  static unsigned char bufs[BATCH][MAX_PKT];
  static struct mmsghdr msgs[BATCH];
  static struct iovec iov[BATCH];
  static struct sockaddr_storage from[BATCH];
  uint64_t packets = 0, bytes = 0, echo_errors = 0;
  while (!stop) {
    for (int i = 0; i < BATCH; i++) {
      iov[i].iov_base = bufs[i]; iov[i].iov_len = MAX_PKT;
      memset(&msgs[i].msg_hdr, 0, sizeof msgs[i].msg_hdr);
      msgs[i].msg_hdr.msg_iov = &iov[i]; msgs[i].msg_hdr.msg_iovlen = 1;
      msgs[i].msg_hdr.msg_name = &from[i]; msgs[i].msg_hdr.msg_namelen = sizeof from[i];
    }
    int n = recvmmsg(fd, msgs, BATCH, MSG_WAITFORONE, NULL);
    if (n <= 0) continue;
    for (int i = 0; i < n; i++) {
      packets++;
      bytes += msgs[i].msg_len;
      if (from[i].ss_family == AF_INET) per_port[0][ntohs(((struct sockaddr_in *)&from[i])->sin_port)]++;
      else per_port[1][ntohs(((struct sockaddr_in6 *)&from[i])->sin6_port)]++;
      iov[i].iov_len = msgs[i].msg_len;
    }
    if (echo) {
      int done = 0;
      while (done < n) {
        int s = sendmmsg(fd, msgs + done, (unsigned)(n - done), 0);
        if (s <= 0) { echo_errors += (uint64_t)(n - done); break; }
        done += s;
      }
    }
  }
  printf("{\"packets\":%llu,\"bytes\":%llu,\"echo_errors\":%llu,\"per_source\":{",
         (unsigned long long)packets, (unsigned long long)bytes, (unsigned long long)echo_errors);
  int first = 1;
  for (int f = 0; f < 2; f++)
    for (int p = 0; p < 65536; p++)
      if (per_port[f][p]) { printf("%s\"%s%d\":%llu", first ? "" : ",", f ? "6:" : "4:", p, (unsigned long long)per_port[f][p]); first = 0; }
  printf("}}\n");
  return 0;
}

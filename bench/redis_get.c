/* Redis as a peer for bench/run: GETs of one VALUE_SIZE-byte value against a local
 * redis-server through hiredis (Debian's libhiredis-dev), the way a careful client would make
 * them: blocking, one at a time (DEPTH 1), or pipelined DEPTH deep (DEPTH commands appended,
 * then DEPTH replies read). Prints one JSON line: requests per second and this process's CPU
 * (user + system) per GET over the timed phase.
 *
 *   redis_get PORT SECONDS DEPTH [VALUE_SIZE] [KEYS]      (127.0.0.1 only)
 */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void) {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return (double)(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         (double)(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

static void check(redisContext* c, redisReply* r, size_t value_size) {
  if (!r) {
    fprintf(stderr, "redis_get: %s\n", c->errstr);
    exit(1);
  }
  if (r->type != REDIS_REPLY_STRING || (size_t)r->len != value_size) {
    fprintf(stderr, "redis_get: unexpected reply (type %d)\n", r->type);
    exit(1);
  }
  freeReplyObject(r);
}

int main(int argc, char** argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: redis_get PORT SECONDS DEPTH [VALUE_SIZE] [KEYS]\n");
    return 2;
  }
  const int port = atoi(argv[1]);
  const double seconds = atof(argv[2]);
  const int depth = atoi(argv[3]);
  const size_t value_size = argc > 4 ? (size_t)atol(argv[4]) : 1000;
  const int keys = argc > 5 ? atoi(argv[5]) : 1000;
  if (port <= 0 || seconds <= 0 || depth < 1 || depth > 1024 || keys < 1 || value_size > (1 << 20)) {
    fprintf(stderr, "redis_get: bad arguments\n");
    return 2;
  }
  redisContext* c = redisConnect("127.0.0.1", port);
  if (!c || c->err) {
    fprintf(stderr, "redis_get: cannot connect: %s\n", c ? c->errstr : "out of memory");
    return 1;
  }
  char* value = malloc(value_size + 1);
  memset(value, 'v', value_size);
  value[value_size] = 0;
  char key[32];
  for (int k = 0; k < keys; ++k) {
    snprintf(key, sizeof key, "bench-%08d", k);
    redisReply* r = redisCommand(c, "SET %s %b", key, value, value_size);
    if (!r || r->type == REDIS_REPLY_ERROR) {
      fprintf(stderr, "redis_get: SET failed\n");
      return 1;
    }
    freeReplyObject(r);
  }
  unsigned seed = 1;
  unsigned long long ops = 0;
  const double t0 = now_s(), c0 = cpu_s();
  double t = t0;
  while (t - t0 < seconds) {
    if (depth == 1) {
      snprintf(key, sizeof key, "bench-%08d", rand_r(&seed) % keys);
      check(c, redisCommand(c, "GET %s", key), value_size);
    } else {
      for (int i = 0; i < depth; ++i) {
        snprintf(key, sizeof key, "bench-%08d", rand_r(&seed) % keys);
        redisAppendCommand(c, "GET %s", key);
      }
      for (int i = 0; i < depth; ++i) {
        void* r = NULL;
        if (redisGetReply(c, &r) != REDIS_OK) r = NULL;
        check(c, r, value_size);
      }
    }
    ops += (unsigned long long)depth;
    if ((ops & 255) < (unsigned long long)depth) t = now_s();
  }
  const double wall = now_s() - t0, cpu = cpu_s() - c0;
  printf(
      "{\"client\":\"hiredis\",\"depth\":%d,\"ops\":%llu,\"seconds\":%.3f,\"ops_per_sec\":%.1f,\"cpu_us_per_"
      "op\":%.2f}\n",
      depth, ops, wall, (double)ops / wall, cpu * 1e6 / (double)ops);
  free(value);
  redisFree(c);
  return 0;
}

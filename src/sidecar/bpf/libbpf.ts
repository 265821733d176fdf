// koffi bindings to libbpf 1.1 (libbpf.so.1) and the few libc calls the
// loader needs. Every BPF operation goes through libbpf: no hand-written bpf
// syscalls. libbpf 1.x returns -errno from int functions and NULL + errno
// from pointer functions; callers turn both into BpfError.
//
// Pointers are untyped BigInts in koffi 3: passing the wrong one crashes the
// process instead of throwing, so only the modules of this folder touch these.
// Option and info structs are the koffi types of structs.ts.
import koffi, { type TypeObject } from 'koffi';
import { libcFunction } from '../../net/libc.ts';
import { BpfError } from './errors.ts';
import './structs.ts'; // registers the struct type names the prototypes below use
import type { LinkCreateOpts, LinkInfo, MapInfo, TestRunOpts, XdpQueryOpts } from './structs.ts';

export type Ptr = bigint;

export const BPF_XDP = 37; // enum bpf_attach_type
export const BPF_LINK_TYPE_XDP = 6;
export const XDP_FLAGS_UPDATE_IF_NOEXIST = 1 << 0;
export const XDP_FLAGS_SKB_MODE = 1 << 1;
export const XDP_FLAGS_DRV_MODE = 1 << 2;
export const XDP_ATTACHED_DRV = 1;
export const XDP_ATTACHED_SKB = 2;
export const BPF_MAP_TYPE_HASH = 1;
export const BPF_MAP_TYPE_ARRAY = 2;
export const BPF_MAP_TYPE_PERF_EVENT_ARRAY = 4;
export const BPF_MAP_TYPE_PERCPU_ARRAY = 6;
export const BPF_STATS_RUN_TIME = 0; // enum bpf_stats_type

export interface LibBpf {
  majorVersion(): number;
  minorVersion(): number;
  numPossibleCpus(): number;
  setPrint(fn: Ptr | null): Ptr | null;

  objectOpenFile(path: string, opts: null): Ptr | null;
  objectLoad(obj: Ptr): number;
  objectClose(obj: Ptr): void;
  objectFindMapByName(obj: Ptr, name: string): Ptr | null;
  objectNextMap(obj: Ptr, prev: Ptr | null): Ptr | null;
  objectFindProgramByName(obj: Ptr, name: string): Ptr | null;
  objectNextProgram(obj: Ptr, prev: Ptr | null): Ptr | null;

  mapName(map: Ptr): string;
  mapFd(map: Ptr): number;
  mapType(map: Ptr): number;
  mapKeySize(map: Ptr): number;
  mapValueSize(map: Ptr): number;
  mapMaxEntries(map: Ptr): number;
  mapFlags(map: Ptr): number;
  mapSetMaxEntries(map: Ptr, n: number): number;
  mapSetPinPath(map: Ptr, path: string | null): number;
  mapReuseFd(map: Ptr, fd: number): number;
  mapIsPinned(map: Ptr): boolean;
  mapUnpin(map: Ptr, path: string | null): number;

  programName(prog: Ptr): string;
  programFd(prog: Ptr): number;

  mapUpdateElem(fd: number, key: Uint8Array, value: Uint8Array, flags: bigint): number;
  mapLookupElem(fd: number, key: Uint8Array, value: Uint8Array): number;
  mapDeleteElem(fd: number, key: Uint8Array): number;
  mapGetNextKey(fd: number, key: Uint8Array | null, next: Uint8Array): number;

  objGet(path: string): number;
  objPin(fd: number, path: string): number;
  /** bpf_obj_get_info_by_fd on a map fd; info is filled in. */
  mapInfoByFd(fd: number, info: MapInfo, len: number[]): number;
  /** bpf_obj_get_info_by_fd on a link fd; info is filled in. */
  linkInfoByFd(fd: number, info: LinkInfo, len: number[]): number;

  linkCreate(progFd: number, targetFd: number, attachType: number, opts: LinkCreateOpts): number;
  linkUpdate(linkFd: number, newProgFd: number, opts: null): number;
  linkDetach(linkFd: number): number;
  xdpDetach(ifindex: number, flags: number, opts: null): number;
  xdpQuery(ifindex: number, flags: number, opts: XdpQueryOpts): number;

  /** BPF_PROG_TEST_RUN (tests and benchmarks); opts is filled in. */
  progTestRunOpts(progFd: number, opts: TestRunOpts): number;
  /** Run-time stats of every program while the returned fd is open (benchmarks). */
  enableStats(type: number): number;

  perfBufferNew(mapFd: number, pages: number, sample: Ptr, lost: Ptr, ctx: null, opts: null): Ptr | null;
  perfBufferPoll: ((pb: Ptr, timeoutMs: number) => number) & {
    async(pb: Ptr, timeoutMs: number, cb: (err: unknown, res: number) => void): void;
  };
  perfBufferFree(pb: Ptr): void;

  ifNameToIndex(name: string): number;
  close(fd: number): number;
  vsnprintf(buf: Uint8Array, n: number, fmt: Ptr, ap: Ptr): number;
  errno(): number;

  /** koffi prototypes for callbacks that C stores. */
  readonly protos: {
    print: TypeObject;
    perfSample: TypeObject;
    perfLost: TypeObject;
  };
}

let cached: LibBpf | undefined;
let loadError: Error | undefined;

/** The bindings, loaded once; throws BpfError NO_LIBBPF when libbpf.so.1 is missing. */
export function libbpf(): LibBpf {
  if (cached) return cached;
  if (loadError) throw loadError;
  try {
    cached = bind();
    return cached;
  } catch (err) {
    loadError = new BpfError(
      `cannot load libbpf.so.1 (install libbpf1): ${(err as Error).message}`,
      'NO_LIBBPF',
    );
    throw loadError;
  }
}

function bind(): LibBpf {
  const lib = koffi.load('libbpf.so.1');
  for (const t of ['bpf_object', 'bpf_map', 'bpf_program', 'perf_buffer']) koffi.opaque(t);

  const print = koffi.proto('int tp_libbpf_print_fn(int level, void *fmt, void *ap)');
  const perfSample = koffi.proto('void tp_perf_sample_fn(void *ctx, int cpu, void *data, uint32_t size)');
  const perfLost = koffi.proto('void tp_perf_lost_fn(void *ctx, int cpu, uint64_t cnt)');

  const f = (decl: string) => lib.func(decl);
  return {
    majorVersion: f('uint32_t libbpf_major_version(void)'),
    minorVersion: f('uint32_t libbpf_minor_version(void)'),
    numPossibleCpus: f('int libbpf_num_possible_cpus(void)'),
    setPrint: f('void *libbpf_set_print(tp_libbpf_print_fn *fn)'),

    objectOpenFile: f('bpf_object *bpf_object__open_file(const char *path, const void *opts)'),
    objectLoad: f('int bpf_object__load(bpf_object *obj)'),
    objectClose: f('void bpf_object__close(bpf_object *obj)'),
    objectFindMapByName: f('bpf_map *bpf_object__find_map_by_name(const bpf_object *obj, const char *name)'),
    objectNextMap: f('bpf_map *bpf_object__next_map(const bpf_object *obj, const bpf_map *map)'),
    objectFindProgramByName: f('bpf_program *bpf_object__find_program_by_name(const bpf_object *obj, const char *name)'),
    objectNextProgram: f('bpf_program *bpf_object__next_program(const bpf_object *obj, bpf_program *prog)'),

    mapName: f('const char *bpf_map__name(const bpf_map *map)'),
    mapFd: f('int bpf_map__fd(const bpf_map *map)'),
    mapType: f('int bpf_map__type(const bpf_map *map)'),
    mapKeySize: f('uint32_t bpf_map__key_size(const bpf_map *map)'),
    mapValueSize: f('uint32_t bpf_map__value_size(const bpf_map *map)'),
    mapMaxEntries: f('uint32_t bpf_map__max_entries(const bpf_map *map)'),
    mapFlags: f('uint32_t bpf_map__map_flags(const bpf_map *map)'),
    mapSetMaxEntries: f('int bpf_map__set_max_entries(bpf_map *map, uint32_t max_entries)'),
    mapSetPinPath: f('int bpf_map__set_pin_path(bpf_map *map, const char *path)'),
    mapReuseFd: f('int bpf_map__reuse_fd(bpf_map *map, int fd)'),
    mapIsPinned: f('bool bpf_map__is_pinned(const bpf_map *map)'),
    mapUnpin: f('int bpf_map__unpin(bpf_map *map, const char *path)'),

    programName: f('const char *bpf_program__name(const bpf_program *prog)'),
    programFd: f('int bpf_program__fd(const bpf_program *prog)'),

    mapUpdateElem: f('int bpf_map_update_elem(int fd, const void *key, const void *value, uint64_t flags)'),
    mapLookupElem: f('int bpf_map_lookup_elem(int fd, const void *key, _Out_ void *value)'),
    mapDeleteElem: f('int bpf_map_delete_elem(int fd, const void *key)'),
    mapGetNextKey: f('int bpf_map_get_next_key(int fd, const void *key, _Out_ void *next_key)'),

    objGet: f('int bpf_obj_get(const char *pathname)'),
    objPin: f('int bpf_obj_pin(int fd, const char *pathname)'),
    mapInfoByFd: f('int bpf_obj_get_info_by_fd(int bpf_fd, _Inout_ bpf_map_info *info, _Inout_ uint32_t *info_len)'),
    linkInfoByFd: f('int bpf_obj_get_info_by_fd(int bpf_fd, _Inout_ bpf_link_info *info, _Inout_ uint32_t *info_len)'),

    linkCreate: f('int bpf_link_create(int prog_fd, int target_fd, int attach_type, const bpf_link_create_opts *opts)'),
    linkUpdate: f('int bpf_link_update(int link_fd, int new_prog_fd, const void *opts)'),
    linkDetach: f('int bpf_link_detach(int link_fd)'),
    xdpDetach: f('int bpf_xdp_detach(int ifindex, uint32_t flags, const void *opts)'),
    xdpQuery: f('int bpf_xdp_query(int ifindex, int flags, _Inout_ bpf_xdp_query_opts *opts)'),

    progTestRunOpts: f('int bpf_prog_test_run_opts(int prog_fd, _Inout_ bpf_test_run_opts *opts)'),
    enableStats: f('int bpf_enable_stats(int type)'),

    perfBufferNew: f(
      'perf_buffer *perf_buffer__new(int map_fd, size_t page_cnt, tp_perf_sample_fn *sample_cb, tp_perf_lost_fn *lost_cb, void *ctx, const void *opts)',
    ),
    perfBufferPoll: f('int perf_buffer__poll(perf_buffer *pb, int timeout_ms)'),
    perfBufferFree: f('void perf_buffer__free(perf_buffer *pb)'),

    ifNameToIndex: libcFunction('unsigned int if_nametoindex(const char *ifname)'),
    close: libcFunction('int close(int fd)'),
    vsnprintf: libcFunction('int vsnprintf(_Out_ uint8_t *buf, size_t n, void *fmt, void *ap)'),
    errno: () => koffi.errno(),
    protos: { print, perfSample, perfLost },
  } as unknown as LibBpf;
}

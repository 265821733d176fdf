// The libbpf 1.1 option structs (bpf/bpf.h, bpf/libbpf.h) and kernel info
// structs (linux/bpf.h) the loader passes, and the x86_64 va_list of libbpf's
// print callback, declared once as koffi types:
// koffi lays them out by the platform C ABI, so sizes and offsets come from
// these declarations, never from literals. Member order and types follow the
// headers; test/bpf/libbpf-structs.test.ts compiles the headers and compares
// every size and offset.
//
// libbpf's option structs start with `sz`, which must be the struct's size
// as this libbpf knows it (sizedOpts() sets it); members left out encode as zeros.
import koffi, { type TypeObject } from 'koffi';

/** Member names given here to unions that are anonymous in C (C code reaches their members directly). */
export const ANONYMOUS_UNIONS: ReadonlySet<string> = new Set(['type_opts', 'type_info', 'by_map', 'by_target']);

/** struct bpf_test_run_opts: BPF_PROG_TEST_RUN's input and results. */
export const BpfTestRunOpts = koffi.struct('bpf_test_run_opts', {
  sz: 'size_t',
  data_in: 'void *',
  data_out: 'void *',
  data_size_in: 'uint32_t',
  data_size_out: 'uint32_t', // in: room in data_out; out: bytes written
  ctx_in: 'void *',
  ctx_out: 'void *',
  ctx_size_in: 'uint32_t',
  ctx_size_out: 'uint32_t',
  retval: 'uint32_t', // out: the program's return value (XDP action)
  repeat: 'int',
  duration: 'uint32_t', // out: average ns per repetition
  flags: 'uint32_t',
  cpu: 'uint32_t',
  batch_size: 'uint32_t',
});

/** struct bpf_link_create_opts. */
export const BpfLinkCreateOpts = koffi.struct('bpf_link_create_opts', {
  sz: 'size_t',
  flags: 'uint32_t', // XDP_FLAGS_* for an XDP link
  iter_info: 'void *',
  iter_info_len: 'uint32_t',
  target_btf_id: 'uint32_t',
  type_opts: koffi.union({
    perf_event: koffi.struct({ bpf_cookie: 'uint64_t' }),
    kprobe_multi: koffi.struct({ flags: 'uint32_t', cnt: 'uint32_t', syms: 'void *', addrs: 'void *', cookies: 'void *' }),
    tracing: koffi.struct({ cookie: 'uint64_t' }),
  }),
  // size_t :0 in C: the size rounds up to size_t alignment, as koffi does.
});

/** struct bpf_xdp_query_opts: which programs are attached to an interface, and how. */
export const BpfXdpQueryOpts = koffi.struct('bpf_xdp_query_opts', {
  sz: 'size_t',
  prog_id: 'uint32_t',
  drv_prog_id: 'uint32_t',
  hw_prog_id: 'uint32_t',
  skb_prog_id: 'uint32_t',
  attach_mode: 'uint8_t', // XDP_ATTACHED_*
});

/** struct bpf_map_info (BPF_OBJ_GET_INFO_BY_FD on a map). */
export const BpfMapInfo = koffi.struct('bpf_map_info', {
  type: 'uint32_t',
  id: 'uint32_t',
  key_size: 'uint32_t',
  value_size: 'uint32_t',
  max_entries: 'uint32_t',
  map_flags: 'uint32_t',
  name: 'char[16]', // BPF_OBJ_NAME_LEN
  ifindex: 'uint32_t',
  btf_vmlinux_value_type_id: 'uint32_t',
  netns_dev: 'uint64_t',
  netns_ino: 'uint64_t',
  btf_id: 'uint32_t',
  btf_key_type_id: 'uint32_t',
  btf_value_type_id: 'uint32_t',
  // __u32 :32 in C: the padding koffi inserts before the 8-aligned map_extra.
  map_extra: 'uint64_t',
});

/** struct bpf_link_info (BPF_OBJ_GET_INFO_BY_FD on a link). */
export const BpfLinkInfo = koffi.struct('bpf_link_info', {
  type: 'uint32_t', // BPF_LINK_TYPE_*
  id: 'uint32_t',
  prog_id: 'uint32_t',
  type_info: koffi.union({
    raw_tracepoint: koffi.struct({ tp_name: 'uint64_t', tp_name_len: 'uint32_t' }),
    tracing: koffi.struct({ attach_type: 'uint32_t', target_obj_id: 'uint32_t', target_btf_id: 'uint32_t' }),
    cgroup: koffi.struct({ cgroup_id: 'uint64_t', attach_type: 'uint32_t' }),
    iter: koffi.struct({
      target_name: 'uint64_t',
      target_name_len: 'uint32_t',
      by_map: koffi.union({ map: koffi.struct({ map_id: 'uint32_t' }) }),
      by_target: koffi.union({
        cgroup: koffi.struct({ cgroup_id: 'uint64_t', order: 'uint32_t' }),
        task: koffi.struct({ tid: 'uint32_t', pid: 'uint32_t' }),
      }),
    }),
    netns: koffi.struct({ netns_ino: 'uint32_t', attach_type: 'uint32_t' }),
    xdp: koffi.struct({ ifindex: 'uint32_t' }),
  }),
});

/** x86_64 SysV struct __va_list_tag: what libbpf's print callback gets a va_list of (print.ts). */
export const VaListTag = koffi.struct('__va_list_tag', {
  gp_offset: 'uint32_t',
  fp_offset: 'uint32_t',
  overflow_arg_area: 'void *',
  reg_save_area: 'void *',
});

/** The JS side of the structs above: what the loader sets or reads (koffi fills the rest). */
export interface TestRunOpts {
  sz: number;
  data_in: bigint;
  data_out: bigint;
  data_size_in: number;
  data_size_out: number;
  repeat: number;
  retval?: number;
  duration?: number;
}
export interface LinkCreateOpts {
  sz: number;
  flags: number;
}
export interface XdpQueryOpts {
  sz: number;
  prog_id?: number;
  attach_mode?: number;
}
export interface MapInfo {
  type?: number;
  key_size?: number;
  value_size?: number;
  max_entries?: number;
  map_flags?: number;
}
export interface LinkInfo {
  type?: number;
  type_info?: { xdp: { ifindex: number } };
}

/** An option struct's JS value with sz set to the struct's size. */
export function sizedOpts<T extends { sz: number }>(type: TypeObject, fields: Omit<T, 'sz'>): T {
  return { sz: koffi.sizeof(type), ...fields } as T;
}

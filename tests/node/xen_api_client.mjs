#!/usr/bin/env node
// Drives Xen Orchestra's XenAPI client, the npm package `xen-api` (unchanged), against a XenAPI
// server: log in, fill the client's object cache (get_all_records then event.from), list the VMs
// it holds, create a VM and see it arrive, start and cleanly shut down a VM (plain calls, then
// Async calls followed through their tasks) and see its power_state change in the cache, destroy
// the created VM and see it leave.
//
// Usage:
//   node xen_api_client.mjs --url http://127.0.0.1:PORT/ [--user root] [--vm OpaqueRef:...]
//                           [--timeout-ms 60000] [--step-timeout-ms 15000]
//                           [--transport auto|json-rpc|xml-rpc]
// The password comes from $XAPI_PASSWORD (or --password); $XAPI_URL, $XAPI_USER and $XAPI_VM
// stand in for the matching options. --vm names the VM to start and shut down (it must be
// Halted); without it the VM this script creates is used. --transport picks the client's
// transport (default auto: JSON-RPC on /jsonrpc; xml-rpc posts to /xmlrpc).
//
// Output: one JSON object per line on stdout, {"step": NAME, "ok": true, ...} for each step,
// then {"step": "done", "ok": true, "warnings": [...], "calls": [...]}; `warnings` are what the
// client logged through console.warn (it reports failed event.from and get_all_records calls that
// way instead of throwing), `calls` the XenAPI methods it called, in order. On failure the last
// line is {"step": NAME, "ok": false, "error": ...}, the same message goes to stderr, and the exit
// status is 1; 2 for bad usage; 3 when the overall timeout fires. The script always exits: the
// client's event loop keeps a long poll open otherwise.

import { format, parseArgs } from 'node:util'
import { createClient } from 'xen-api'

const USAGE = 'usage: node xen_api_client.mjs --url URL [--user NAME] [--vm REF] (password in $XAPI_PASSWORD)'

function options() {
  const { values } = parseArgs({
    options: {
      url: { type: 'string', default: process.env.XAPI_URL },
      user: { type: 'string', default: process.env.XAPI_USER ?? 'root' },
      password: { type: 'string', default: process.env.XAPI_PASSWORD },
      vm: { type: 'string', default: process.env.XAPI_VM },
      'timeout-ms': { type: 'string', default: '60000' },
      'step-timeout-ms': { type: 'string', default: '15000' },
      transport: { type: 'string', default: 'auto' },
    },
    strict: true,
  })
  const timeoutMs = Number(values['timeout-ms'])
  const stepTimeoutMs = Number(values['step-timeout-ms'])
  if (!values.url || values.password === undefined || !(timeoutMs > 0) || !(stepTimeoutMs > 0)) {
    throw new Error(USAGE)
  }
  return { ...values, timeoutMs, stepTimeoutMs }
}

// A complete VM.create record (every field without a default), as tests/models/helpers.py sends
// it. xen-api passes numbers through unchanged on JSON-RPC, so int64 fields are strings here.
function vmCreateRecord(nameLabel) {
  const GiB = 2 ** 30
  const MiB = 2 ** 20
  return {
    name_label: nameLabel,
    name_description: 'created by tests/node/xen_api_client.mjs',
    user_version: '1',
    is_a_template: false,
    affinity: 'OpaqueRef:NULL',
    memory_static_max: String(GiB),
    memory_dynamic_max: String(GiB),
    memory_dynamic_min: String(512 * MiB),
    memory_static_min: String(256 * MiB),
    VCPUs_params: {},
    VCPUs_max: '2',
    VCPUs_at_startup: '1',
    actions_after_shutdown: 'destroy',
    actions_after_reboot: 'restart',
    actions_after_crash: 'restart',
    PV_bootloader: '',
    PV_kernel: '',
    PV_ramdisk: '',
    PV_args: '',
    PV_bootloader_args: '',
    PV_legacy_args: '',
    HVM_boot_policy: 'BIOS order',
    HVM_boot_params: {},
    platform: {},
    PCI_bus: '',
    other_config: {},
    recommendations: '',
  }
}

const warnings = []
let currentStep = 'setup'

function emit(record) {
  process.stdout.write(JSON.stringify(record) + '\n')
}

function fail(step, error, status = 1) {
  const message = error?.code !== undefined ? `${error.code}(${(error.params ?? []).join(', ')})` : String(error?.message ?? error)
  emit({ step, ok: false, error: message, code: error?.code, warnings })
  process.stderr.write(`xen_api_client: step ${step} failed: ${message}\n`)
  process.exit(status)
}

// stdout carries only this script's JSON lines: the client's debug and info logs (enabled by
// $DEBUG or $LOG_LEVEL) go to stderr.
console.log = console.info = console.debug = (...args) => {
  process.stderr.write(format(...args) + '\n')
}

// xen-api reports failures of its background event loop with console.warn and retries; keep them.
console.warn = (...args) => {
  const text = args.map(a => (a instanceof Error ? `${a.name}: ${a.message}` : typeof a === 'string' ? a : format('%O', a))).join(' ')
  warnings.push(text)
  process.stderr.write(`xen-api warning: ${text}\n`)
}

function withTimeout(promise, ms, what) {
  let timer
  const timeout = new Promise((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

// Resolve with `probe()` once it is not undefined, checking on every change of the cache.
function waitUntil(xapi, probe, ms, what) {
  const objects = xapi.objects
  let check
  return withTimeout(
    new Promise(resolve => {
      check = () => {
        const found = probe()
        if (found !== undefined) {
          resolve(found)
        }
      }
      for (const event of ['add', 'update', 'remove']) objects.on(event, check)
      check()
    }),
    ms,
    what
  ).finally(() => {
    for (const event of ['add', 'update', 'remove']) objects.removeListener(event, check)
  })
}

// Resolve with the cached object once `predicate` holds for it (or with null once it is gone).
function waitForCache(xapi, ref, predicate, ms, what) {
  return waitUntil(
    xapi,
    () => {
      const object = xapi.getObjectByRef(ref, undefined)
      return predicate(object) ? (object ?? null) : undefined
    },
    ms,
    what
  )
}

function cachedOfType(xapi, type) {
  return Object.values(xapi.objects.all).filter(object => object.$type === type)
}

function vmSummary(vm) {
  return { ref: vm.$ref, uuid: vm.uuid, name_label: vm.name_label, power_state: vm.power_state, is_control_domain: vm.is_control_domain }
}

async function step(name, body) {
  currentStep = name
  const result = await body()
  emit({ step: name, ok: true, ...result })
}

async function main(opts) {
  const xapi = createClient({
    url: opts.url,
    transport: opts.transport,
    auth: { user: opts.user, password: opts.password },
    allowUnauthorized: true,
    // the client waits this long between the end of one event.from and the next
    debounce: 50,
  })
  const { stepTimeoutMs } = opts

  // Observation only: the XenAPI methods the client calls, in order (reported by the last line).
  const calls = []
  const transport = xapi._transport
  xapi._transport = (method, args) => {
    calls.push(method)
    return transport(method, args)
  }

  await step('connect', async () => {
    await withTimeout(xapi.connect(), stepTimeoutMs, 'connect')
    return { status: xapi.status, pool: xapi.pool.$ref, pool_uuid: xapi.pool.uuid, types: xapi._types }
  })

  await step('objects_fetched', async () => {
    await withTimeout(xapi.objectsFetched, stepTimeoutMs, 'initial fetch of the object cache')
    const byType = {}
    for (const object of Object.values(xapi.objects.all)) {
      byType[object.$type] = (byType[object.$type] ?? 0) + 1
    }
    return { counts: byType }
  })

  await step('list_vms', async () => ({ vms: cachedOfType(xapi, 'VM').map(vmSummary) }))

  let created
  await step('create_vm', async () => {
    created = await withTimeout(xapi.call('VM.create', vmCreateRecord('xen-api-node-client')), stepTimeoutMs, 'VM.create')
    const vm = await waitForCache(xapi, created, object => object !== undefined, stepTimeoutMs, `VM ${created} in the cache`)
    return { vm: vmSummary(vm) }
  })

  const target = opts.vm ?? created
  await step('initial_state', async () => {
    const vm = await waitForCache(xapi, target, object => object !== undefined, stepTimeoutMs, `VM ${target} in the cache`)
    return { vm: vmSummary(vm) }
  })

  // Xapi#call makes the plain call; Xapi#callAsync makes the Async. call and waits for its task to
  // settle in the cache (task events from event.from), as Xen Orchestra starts and stops VMs.
  for (const [name, method, args, expected] of [
    ['start', 'call', [false, false], 'Running'],
    ['clean_shutdown', 'call', [], 'Halted'],
    ['async_start', 'callAsync', [false, false], 'Running'],
    ['async_clean_shutdown', 'callAsync', [], 'Halted'],
  ]) {
    await step(name, async () => {
      const message = `VM.${name.replace(/^async_/, '')}`
      const result = await withTimeout(xapi[method](message, target, ...args), stepTimeoutMs, `${method} ${message}`)
      const vm = await waitForCache(
        xapi,
        target,
        object => object?.power_state === expected,
        stepTimeoutMs,
        `power_state ${expected} of ${target} in the cache`
      )
      // callAsync destroys its task once settled; wait for the del event so that the next call
      // starts from a quiet event loop (and the task count the client keeps is settled)
      const tasks = await waitUntil(
        xapi,
        () => (cachedOfType(xapi, 'task').length === 0 ? [] : undefined),
        stepTimeoutMs,
        'no task left in the cache'
      )
      return { result: result ?? null, vm: vmSummary(vm), tasks_in_cache: tasks.length }
    })
  }

  await step('destroy_vm', async () => {
    await withTimeout(xapi.call('VM.destroy', created), stepTimeoutMs, 'VM.destroy')
    await waitForCache(xapi, created, object => object === undefined, stepTimeoutMs, `VM ${created} gone from the cache`)
    return { ref: created, vms: cachedOfType(xapi, 'VM').map(vmSummary) }
  })

  await step('disconnect', async () => {
    await withTimeout(xapi.disconnect(), stepTimeoutMs, 'disconnect')
    return { status: xapi.status }
  })

  emit({ step: 'done', ok: true, warnings, calls })
}

let opts
try {
  opts = options()
} catch (error) {
  process.stderr.write(`xen_api_client: ${error.message}\n`)
  process.exit(2)
}
setTimeout(() => fail(currentStep, new Error(`overall timeout of ${opts.timeoutMs} ms reached`), 3), opts.timeoutMs)
main(opts).then(
  () => process.exit(0),
  error => fail(currentStep, error)
)

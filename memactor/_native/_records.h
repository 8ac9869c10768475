/* memactor/_native/_records.h: the compact event records the compiled emits write and the
 * compiled ledger reads (the contract between memactor._native._emit and ._ledger).
 *
 * A record is one event: the eleven fields of memactor.events.MemoryEvent, in C. The
 * integers that are exact Python ints within int64 (every one an emit gets from a
 * well-behaved caller) are kept as C integers; when any of block, size, time, old size or
 * number is anything else (a float, a numpy integer, a bool, an int beyond 64 bits, a
 * string), the record keeps the eleven-field tuple exactly as the pure-Python emit builds
 * it in `boxed`, and readers take the event from there: so a record never changes what an
 * event says, however odd.
 *
 * Ownership: a record holds a strong reference to each of its five object fields (never
 * NULL: `dst` is Py_None where there is none, `tags` the empty tuple) and to `boxed`
 * (NULL where the integers are the C ones). A Batch owns its records and releases them
 * when it is freed or cleared.
 *
 * A Batch (memactor._native._emit.Batch) is a sequence of records in emission order; it
 * reads as a sequence of the event tuples (len, indexing, iteration, slicing). The ledger
 * recognises it by its type object (passed to memactor._native._ledger.bind) and reads
 * its records in place.
 */
#ifndef MEMACTOR_RECORDS_H
#define MEMACTOR_RECORDS_H

#include <Python.h>
#include <stdint.h>

#define MEMACTOR_RECORDS_VERSION 1

typedef struct {
    PyObject *component; /* str (as emitted: the reporter's component) */
    PyObject *device;    /* str; a TRANSFER's source device */
    PyObject *owner;     /* str; "" for FREE, RELEASE and RESIZE */
    PyObject *tags;      /* a tuple of (key, value) pairs; () for none */
    PyObject *dst;       /* a TRANSFER's destination device; Py_None otherwise */
    PyObject *boxed;     /* NULL, or the whole event tuple when an integer field is not an
                          * exact int within int64 (then the fields below are unspecified) */
    int64_t block;
    int64_t size;
    int64_t ts;
    int64_t old_size; /* RESIZE's old size; 0 for every other kind */
    int64_t seq;
    int32_t kind; /* memactor.events.EventKind's value: 0 ALLOC .. 5 TRANSFER */
    int32_t reserved_;
} EventRecord;

typedef struct {
    PyObject_HEAD
    Py_ssize_t length;
    Py_ssize_t capacity;
    EventRecord *records;
    int32_t version; /* MEMACTOR_RECORDS_VERSION */
} EventBatchObject;

#endif

/* memactor._native._ledger: the ledger's apply loop, compiled.
 *
 * apply(ledger, events) does exactly what Ledger._apply_python does (the reference in
 * memactor/metrics/_ledger.py), on the ledger's own Python objects: the Account,
 * DeviceAccount and OwnerAccount objects (read and written through their __slots__
 * offsets), each account's live blocks (a Blocks: the C table of _blocktable.h, which
 * reads from Python as the dict of packed int records the reference keeps), the owner
 * table. Everything outside apply (statistics, snapshots, retirement) reads the same
 * objects, so it is unchanged. The counters of the current (component, device) and its device live in C
 * integers while consecutive events share them, and go back to their objects when the
 * pair changes and at the end, as the Python loop keeps them in locals.
 *
 * Hot kinds (ALLOC, FREE, ACQUIRE, RELEASE, RESIZE and their anomalies) run here; the
 * rare and feature paths call the same Python methods the reference calls (opening an
 * account or owner, counting an anomaly, tags, sites, requested sizes, transfers), in
 * the same order, so an error raised by one leaves the same books in both.
 *
 * Errors: an exception of the kinds the reference counts as a malformed event
 * (TypeError, ValueError, AttributeError, KeyError, OverflowError) is counted and the
 * loop goes on; any other is raised after the books of the events before it are stored
 * and counted in _events_applied.
 *
 * Counters are 128-bit C integers: every size is at most 2**48 - 1, so no count of
 * events a machine can apply makes one outgrow them (a counter that did would raise
 * RuntimeError, never a wrong figure). Lifetimes are summed as Python ints when an
 * event's time is beyond 64 bits (a FREE's time is not range-checked).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>

#ifndef __SIZEOF_INT128__
/* Without it the build fails, and memactor runs the ledger in pure Python (it says so). */
#error "memactor's compiled ledger needs a compiler with __int128 (GCC or Clang)"
#endif

__extension__ typedef __int128 i128;
__extension__ typedef unsigned __int128 u128;
#define I128_MAX ((i128)(((u128)1 << 127) - 1))

#define SIZE_BITS 48
#define OWNER_BITS 24
#define TIME_SHIFT (SIZE_BITS + OWNER_BITS)
#define SIZE_MASK ((((uint64_t)1) << SIZE_BITS) - 1)
#define OWNER_MASK ((((uint64_t)1) << OWNER_BITS) - 1)
#define HISTOGRAM_BUCKETS 49
#define FIELDS 11
#define RECORD_BYTES 17 /* 136 bits: a 64-bit time above 72 bits of owner and size */

enum { ALLOC, FREE, RESIZE, ACQUIRE, RELEASE, TRANSFER, UNKNOWN_KIND };

/* ---- ints ------------------------------------------------------------------------ */

#if PY_VERSION_HEX >= 0x030D0000
static int
long_to_bytes(PyObject *v, unsigned char *buf, size_t n)
{
    Py_ssize_t need = PyLong_AsNativeBytes(v, buf, (Py_ssize_t)n, Py_ASNATIVEBYTES_LITTLE_ENDIAN);
    if (need < 0)
        return -1;
    if ((size_t)need > n) {
        PyErr_SetString(PyExc_OverflowError, "int too big to convert");
        return -1;
    }
    return 0;
}
static PyObject *
long_from_bytes(const unsigned char *buf, size_t n)
{
    return PyLong_FromNativeBytes(buf, n, Py_ASNATIVEBYTES_LITTLE_ENDIAN);
}
#else
static int
long_to_bytes(PyObject *v, unsigned char *buf, size_t n)
{
    return _PyLong_AsByteArray((PyLongObject *)v, buf, n, 1, 1);
}
static PyObject *
long_from_bytes(const unsigned char *buf, size_t n)
{
    return _PyLong_FromByteArray(buf, n, 1, 1);
}
#endif

static PyObject *
from_i128(i128 v)
{
    if (v >= INT64_MIN && v <= INT64_MAX)
        return PyLong_FromLongLong((long long)v);
    unsigned char buf[16];
    u128 u = (u128)v;
    for (int i = 0; i < 16; i++)
        buf[i] = (unsigned char)(u >> (8 * i));
    return long_from_bytes(buf, 16);
}

/* An int as a 128-bit integer: 0, or -1 with an error (TypeError for a non-int; a
 * counter beyond 128 bits is RuntimeError, which apply raises rather than counts). */
static int
as_i128(PyObject *v, i128 *out)
{
    if (!PyLong_Check(v)) {
        PyErr_Format(PyExc_TypeError, "ledger counter must be an int, got %R", v);
        return -1;
    }
    int overflow;
    long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (!overflow) {
        if (x == -1 && PyErr_Occurred())
            return -1;
        *out = x;
        return 0;
    }
    unsigned char buf[16];
    if (long_to_bytes(v, buf, 16) < 0) {
        PyErr_Clear();
        PyErr_SetString(PyExc_RuntimeError, "a ledger counter outgrew 128 bits");
        return -1;
    }
    u128 u = 0;
    for (int i = 15; i >= 0; i--)
        u = (u << 8) | buf[i];
    *out = (i128)u;
    return 0;
}

/* An int (after operator.index) as int64: 1 fits, 0 does not, -1 error. */
static inline int small_int(PyObject *v, int64_t *out);


static int
fits_i64(PyObject *v, int64_t *out)
{
    if (small_int(v, out))
        return 1;
    int overflow;
    long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (overflow)
        return 0;
    if (x == -1 && PyErr_Occurred())
        return -1;
    *out = x;
    return 1;
}

/* A live block's packed record: size (bits 0-47), owner index (48-71), time (72-). */
typedef struct {
    uint64_t size;
    uint64_t owner;
    int64_t time;
} Record;

/* CPython keeps an int as 30-bit digits (cpython/longintrepr.h): records of today's
 * clock (times below 2**55 ns, a year and more of uptime) are read and made from them
 * directly, as are small ints; every other int goes through the C API. 3.11 keeps the
 * signed digit count in ob_size, 3.12 and 3.13 the count and sign in lv_tag. Not on a
 * free-threaded build, where an int held once may still be read by another thread. */
#if PYLONG_BITS_IN_DIGIT == 30 && PY_VERSION_HEX < 0x030E0000 && !defined(Py_GIL_DISABLED)
#define DIGIT_RECORDS 1
#if PY_VERSION_HEX < 0x030C0000
#define DIGITS_OF(v) (((PyLongObject *)(v))->ob_digit)
#define SIGNED_DIGITS(v) Py_SIZE(v)
/* The digit count of a positive int, or -1 for any other. */
#define POSITIVE_DIGITS(v) (Py_SIZE(v) > 0 ? Py_SIZE(v) : -1)
#else
#define DIGITS_OF(v) (((PyLongObject *)(v))->long_value.ob_digit)
static inline Py_ssize_t
SIGNED_DIGITS(PyObject *v)
{
    uintptr_t tag = ((PyLongObject *)v)->long_value.lv_tag;
    Py_ssize_t count = (Py_ssize_t)(tag >> 3);
    return (tag & 3) == 2 ? -count : (tag & 3) == 1 ? 0 : count;
}
/* Only a positive int with no flag set (3.13 marks immortal ones in bit 2). */
#define POSITIVE_DIGITS(v)                                                      \
    ((((PyLongObject *)(v))->long_value.lv_tag & 7) == 0                          \
         ? (Py_ssize_t)(((PyLongObject *)(v))->long_value.lv_tag >> 3)            \
         : -1)
#endif
#define TIME_LIMIT (((int64_t)1) << 55)
#endif

/* The value of an int (exact or a subclass) of at most two 30-bit digits (a size, a
 * block id, a kind, a time of the last 36 years): 1, else 0 (ask the C API). */
static inline int
small_digits(PyObject *v, int64_t *out)
{
#ifdef DIGIT_RECORDS
    const digit *d = DIGITS_OF(v);
    switch (SIGNED_DIGITS(v)) {
    case 0:
        *out = 0;
        return 1;
    case 1:
        *out = d[0];
        return 1;
    case 2:
        *out = ((int64_t)d[1] << PyLong_SHIFT) | d[0];
        return 1;
    case -1:
        *out = -(int64_t)d[0];
        return 1;
    }
#endif
    (void)v;
    (void)out;
    return 0;
}

static inline int
small_int(PyObject *v, int64_t *out)
{
    return PyLong_CheckExact(v) && small_digits(v, out);
}

static int
record_read(PyObject *value, Record *record)
{
    if (!PyLong_Check(value)) {
        PyErr_Format(PyExc_TypeError, "a live block's record must be an int, got %R", value);
        return -1;
    }
#ifdef DIGIT_RECORDS
    Py_ssize_t digits = SIGNED_DIGITS(value);
    if (digits >= 0 && (digits <= 4 || (digits == 5 && DIGITS_OF(value)[4] < 256))) {
        const digit *digit = DIGITS_OF(value);
        u128 u = 0;
        for (Py_ssize_t i = digits - 1; i >= 0; i--)
            u = (u << PyLong_SHIFT) | digit[i];
        record->size = (uint64_t)u & SIZE_MASK;
        record->owner = (uint64_t)(u >> SIZE_BITS) & OWNER_MASK;
        record->time = (int64_t)(u >> TIME_SHIFT);
        return 0;
    }
#endif
    unsigned char buf[RECORD_BYTES];
    if (long_to_bytes(value, buf, RECORD_BYTES) < 0)
        return -1;
    uint64_t size = 0, owner = 0, time = 0;
    for (int i = 5; i >= 0; i--)
        size = (size << 8) | buf[i];
    for (int i = 8; i >= 6; i--)
        owner = (owner << 8) | buf[i];
    for (int i = 16; i >= 9; i--)
        time = (time << 8) | buf[i];
    record->size = size;
    record->owner = owner;
    record->time = (int64_t)time;
    return 0;
}

static PyObject *
record_make(const Record *record)
{
#ifdef DIGIT_RECORDS
    if (record->time >= 0 && record->time < TIME_LIMIT) {
        u128 u = ((u128)record->time << TIME_SHIFT) | ((u128)record->owner << SIZE_BITS) |
                 record->size;
        if (u <= (u128)INT64_MAX)
            return PyLong_FromLongLong((long long)u);
        uint64_t high = (uint64_t)(u >> 64);
        int bits = high ? 128 - __builtin_clzll(high) : 64 - __builtin_clzll((uint64_t)u);
        Py_ssize_t digits = (bits + PyLong_SHIFT - 1) / PyLong_SHIFT;
        PyLongObject *made = _PyLong_New(digits);
        if (made == NULL)
            return NULL;
        for (Py_ssize_t i = 0; i < digits; i++, u >>= PyLong_SHIFT)
            DIGITS_OF(made)[i] = (digit)(u & PyLong_MASK);
        return (PyObject *)made;
    }
#endif
    unsigned char buf[RECORD_BYTES];
    uint64_t time = (uint64_t)record->time;
    for (int i = 0; i < 6; i++)
        buf[i] = (unsigned char)(record->size >> (8 * i));
    for (int i = 0; i < 3; i++)
        buf[6 + i] = (unsigned char)(record->owner >> (8 * i));
    for (int i = 0; i < 8; i++)
        buf[9 + i] = (unsigned char)(time >> (8 * i));
    return long_from_bytes(buf, RECORD_BYTES);
}

#include "_blocktable.h"
#include "_records.h"

/* The compiled emits' Batch type (memactor._native._emit.Batch), once bind_records named
 * it: apply reads its records in place. */
static PyTypeObject *batch_type;

/* ---- the slots of the ledger's objects -------------------------------------------- */

enum { ACCOUNT, DEVICE, OWNER, CLASSES };

typedef struct {
    const char *name;
    int cls;
    PyObject *name_obj;
    Py_ssize_t offset;
} Field;

enum {
    A_RESERVED, A_IN_USE, A_PEAK_RESERVED, A_PEAK_IN_USE, A_ALLOCATIONS, A_FREES,
    A_ACQUIRES, A_RELEASES, A_BYTES_ALLOCATED, A_BLOCKS, A_HISTOGRAM, A_REQUESTS, A_SITES,
    A_DEVICE_ACCOUNT, A_RESIZES, A_LIFETIME_TOTAL, A_LIFETIME_MAX, A_LIFETIMES, A_FREED,
    A_FREE_LIMIT, D_RESERVED, D_IN_USE, D_PEAK_RESERVED, D_PEAK_IN_USE, O_IN_USE,
    O_PEAK_IN_USE, O_TAG, FIELD_COUNT
};

static Field fields[FIELD_COUNT] = {
    {"reserved", ACCOUNT}, {"in_use", ACCOUNT}, {"peak_reserved", ACCOUNT},
    {"peak_in_use", ACCOUNT}, {"allocations", ACCOUNT}, {"frees", ACCOUNT},
    {"acquires", ACCOUNT}, {"releases", ACCOUNT}, {"bytes_allocated", ACCOUNT},
    {"blocks", ACCOUNT}, {"histogram", ACCOUNT}, {"requests", ACCOUNT}, {"sites", ACCOUNT},
    {"device_account", ACCOUNT}, {"resizes", ACCOUNT}, {"lifetime_total_ns", ACCOUNT},
    {"lifetime_max_ns", ACCOUNT}, {"lifetimes", ACCOUNT}, {"freed", ACCOUNT},
    {"free_limit", ACCOUNT}, {"reserved", DEVICE}, {"in_use", DEVICE},
    {"peak_reserved", DEVICE}, {"peak_in_use", DEVICE}, {"in_use", OWNER},
    {"peak_in_use", OWNER}, {"tag", OWNER},
};

static PyTypeObject *classes[CLASSES];

/* A new reference to obj.<field>; through its slot when obj is of the bound class. */
static PyObject *
get(PyObject *obj, int f)
{
    const Field *field = &fields[f];
    if (Py_TYPE(obj) == classes[field->cls]) {
        PyObject *value = *(PyObject **)((char *)obj + field->offset);
        if (value == NULL) {
            PyErr_SetObject(PyExc_AttributeError, field->name_obj);
            return NULL;
        }
        Py_INCREF(value);
        return value;
    }
    return PyObject_GetAttr(obj, field->name_obj);
}

/* obj.<field> = value, stealing the reference to value (which may be NULL: an error). */
static int
put(PyObject *obj, int f, PyObject *value)
{
    if (value == NULL)
        return -1;
    const Field *field = &fields[f];
    if (Py_TYPE(obj) == classes[field->cls]) {
        PyObject **slot = (PyObject **)((char *)obj + field->offset);
        PyObject *old = *slot;
        *slot = value;
        Py_XDECREF(old);
        return 0;
    }
    int result = PyObject_SetAttr(obj, field->name_obj, value);
    Py_DECREF(value);
    return result;
}

/* as_i128 of a new reference (NULL: an error), which it releases. */
static int
take_i128(PyObject *value, i128 *out)
{
    if (value == NULL)
        return -1;
    int result = as_i128(value, out);
    Py_DECREF(value);
    return result;
}

static int
get_i128(PyObject *obj, int f, i128 *out)
{
    return take_i128(get(obj, f), out);
}

static int
put_i128(PyObject *obj, int f, i128 value)
{
    return put(obj, f, from_i128(value));
}

/* ---- names ------------------------------------------------------------------------ */

static PyObject *malformed_errors, *zero;
static PyObject *kind_values[UNKNOWN_KIND];
/* The order in which the reference compares an event's kind. */
static const int kind_order[UNKNOWN_KIND] = {RELEASE, ACQUIRE, ALLOC, FREE, RESIZE, TRANSFER};

#define NAMES(X)                                                                           \
    X(_open_account) X(_open_owner) X(_stray_kind) X(_transfer) X(count_anomaly)            \
    X(was_freed) X(note_tags) X(end_request) X(end_site) X(resize_site) X(forget_old_frees) \
    X(_owners) X(_holders) X(_dirty) X(_accounts) X(_reserved) X(_in_use)                   \
    X(_peak_reserved) X(_peak_in_use) X(_events_applied) X(_malformed) X(size_mismatch)     \
    X(bad_size) X(bad_block) X(duplicate_alloc) X(bad_timestamp) X(double_free)             \
    X(unknown_block) X(unknown_kind) X(release) X(acquire) X(resize) X(add)
#define DECLARE(name) static PyObject *s_##name;
NAMES(DECLARE)

/* ---- the books of the current (component, device) ---------------------------------- */

/* A device's counters, shared by the books of every account on it that apply holds. */
typedef struct {
    PyObject *dev; /* the DeviceAccount (strong); NULL: a free slot */
    i128 reserved, in_use, peak_reserved, peak_in_use;
    int users;
} Dev;

typedef struct {
    PyObject *self;
    PyObject *account; /* NULL: an empty slot */
    Dev *dv;
    PyObject *blocks, *histogram, *requests, *sites;
    i128 reserved, in_use, peak_reserved, peak_in_use, allocations, frees, acquires,
        releases, bytes_allocated;
    int64_t histogram_added[HISTOGRAM_BUCKETS];
    int histogram_changed;
    /* The account's lifetimes, its set of freed ids and their limit, in C while FREEs
     * take the records' fast path: loaded by the first (lifetimes_loaded), written back
     * by books_store and before a FREE the tuple's way (which works on the objects). */
    int lifetimes_loaded;
    i128 lifetimes, lifetime_total, lifetime_max;
    PyObject *freed;
    int64_t free_limit;
} Books;

/* Write a device's counters back to its DeviceAccount. */
static int
dev_store(Dev *d)
{
    if (d->dev == NULL)
        return 0;
    if (put_i128(d->dev, D_RESERVED, d->reserved) < 0 || put_i128(d->dev, D_IN_USE, d->in_use) < 0 ||
        put_i128(d->dev, D_PEAK_RESERVED, d->peak_reserved) < 0 ||
        put_i128(d->dev, D_PEAK_IN_USE, d->peak_in_use) < 0)
        return -1;
    return 0;
}

/* One account's books fewer use *d*; the last one frees the slot. Nothing is written:
 * books_store writes an account's device with it. */
static void
dev_detach(Dev *d)
{
    if (d != NULL && --d->users <= 0)
        Py_CLEAR(d->dev);
}

static void
books_clear(Books *b)
{
    Py_CLEAR(b->account);
    dev_detach(b->dv);
    b->dv = NULL;
    Py_CLEAR(b->blocks);
    Py_CLEAR(b->histogram);
    Py_CLEAR(b->requests);
    Py_CLEAR(b->sites);
    Py_CLEAR(b->freed);
    b->lifetimes_loaded = 0;
}

/* Write the lifetimes kept in C (if any) back to the account. */
static int
lifetimes_put(Books *b)
{
    if (b->lifetimes_loaded &&
        (put_i128(b->account, A_LIFETIMES, b->lifetimes) < 0 ||
         put_i128(b->account, A_LIFETIME_TOTAL, b->lifetime_total) < 0 ||
         put_i128(b->account, A_LIFETIME_MAX, b->lifetime_max) < 0))
        return -1;
    return 0;
}

/* Write the lifetimes kept in C back to the account and stop keeping them. */
static int
lifetimes_unload(Books *b)
{
    int result = lifetimes_put(b);
    b->lifetimes_loaded = 0;
    Py_CLEAR(b->freed);
    return result;
}

/* Keep the account's lifetimes and freed ids in C: 1, 0 where they cannot be (a sum
 * beyond 128 bits, a set that is not a set: the tuple's way handles those), -1. */
static int
lifetimes_load(Books *b)
{
    PyObject *a = b->account;
    PyObject *freed = get(a, A_FREED);
    if (freed == NULL)
        return -1;
    i128 limit;
    if (!PySet_CheckExact(freed) || get_i128(a, A_LIFETIMES, &b->lifetimes) < 0 ||
        get_i128(a, A_LIFETIME_TOTAL, &b->lifetime_total) < 0 ||
        get_i128(a, A_LIFETIME_MAX, &b->lifetime_max) < 0 ||
        get_i128(a, A_FREE_LIMIT, &limit) < 0 || limit < 0 || limit > INT64_MAX) {
        Py_DECREF(freed);
        if (PyErr_Occurred() && !PyErr_ExceptionMatches(PyExc_RuntimeError) &&
            !PyErr_ExceptionMatches(PyExc_TypeError))
            return -1;
        PyErr_Clear();
        return 0;
    }
    b->freed = freed;
    b->free_limit = (int64_t)limit;
    b->lifetimes_loaded = 1;
    return 1;
}

/* Write the counters in C integers back to the account and its device. */
static int
books_store(Books *b)
{
    PyObject *a = b->account;
    if (a == NULL)
        return 0;
    if (put_i128(a, A_RESERVED, b->reserved) < 0 || put_i128(a, A_IN_USE, b->in_use) < 0 ||
        put_i128(a, A_PEAK_RESERVED, b->peak_reserved) < 0 ||
        put_i128(a, A_PEAK_IN_USE, b->peak_in_use) < 0 ||
        put_i128(a, A_ALLOCATIONS, b->allocations) < 0 || put_i128(a, A_FREES, b->frees) < 0 ||
        put_i128(a, A_ACQUIRES, b->acquires) < 0 || put_i128(a, A_RELEASES, b->releases) < 0 ||
        put_i128(a, A_BYTES_ALLOCATED, b->bytes_allocated) < 0 ||
        (b->dv != NULL && dev_store(b->dv) < 0))
        return -1;
    if (b->histogram_changed) {
        for (int i = 0; i < HISTOGRAM_BUCKETS; i++) {
            if (!b->histogram_added[i])
                continue;
            PyObject *old = PySequence_GetItem(b->histogram, i);
            if (old == NULL)
                return -1;
            i128 count;
            int failed = as_i128(old, &count);
            Py_DECREF(old);
            if (failed)
                return -1;
            PyObject *value = from_i128(count + b->histogram_added[i]);
            if (value == NULL || PySequence_SetItem(b->histogram, i, value) < 0) {
                Py_XDECREF(value);
                return -1;
            }
            Py_DECREF(value);
            b->histogram_added[i] = 0;
        }
        b->histogram_changed = 0;
    }
    return lifetimes_put(b);
}

/* The slot of device account *dev* among *devs* (BOOK_SLOTS of them), its counters read
 * the first time; NULL with an error. */
#define BOOK_SLOTS 8
static Dev *
dev_attach(Dev *devs, PyObject *dev)
{
    Dev *free_slot = NULL;
    for (int i = 0; i < BOOK_SLOTS; i++) {
        if (devs[i].dev == dev) {
            devs[i].users++;
            return &devs[i];
        }
        if (devs[i].dev == NULL && free_slot == NULL)
            free_slot = &devs[i];
    }
    /* BOOK_SLOTS books use at most BOOK_SLOTS devices: a slot is free. */
    Dev *d = free_slot;
    if (get_i128(dev, D_RESERVED, &d->reserved) < 0 || get_i128(dev, D_IN_USE, &d->in_use) < 0 ||
        get_i128(dev, D_PEAK_RESERVED, &d->peak_reserved) < 0 ||
        get_i128(dev, D_PEAK_IN_USE, &d->peak_in_use) < 0)
        return NULL;
    Py_INCREF(dev);
    d->dev = dev;
    d->users = 1;
    return d;
}

/* Take *account* (a new reference, stolen) into the empty books *b* and read them, with
 * its device's counters shared through *devs*. */
static int
books_load(Books *b, PyObject *account, Dev *devs)
{
    books_clear(b);
    b->account = account;
    PyObject *a = account;
    if ((b->blocks = get(a, A_BLOCKS)) == NULL || (b->histogram = get(a, A_HISTOGRAM)) == NULL ||
        (b->requests = get(a, A_REQUESTS)) == NULL || (b->sites = get(a, A_SITES)) == NULL ||
        get_i128(a, A_RESERVED, &b->reserved) < 0 || get_i128(a, A_IN_USE, &b->in_use) < 0 ||
        get_i128(a, A_PEAK_RESERVED, &b->peak_reserved) < 0 ||
        get_i128(a, A_PEAK_IN_USE, &b->peak_in_use) < 0 ||
        get_i128(a, A_ALLOCATIONS, &b->allocations) < 0 || get_i128(a, A_FREES, &b->frees) < 0 ||
        get_i128(a, A_ACQUIRES, &b->acquires) < 0 || get_i128(a, A_RELEASES, &b->releases) < 0 ||
        get_i128(a, A_BYTES_ALLOCATED, &b->bytes_allocated) < 0)
        goto broken;
    PyObject *dev = get(a, A_DEVICE_ACCOUNT);
    if (dev == NULL)
        goto broken;
    b->dv = dev_attach(devs, dev);
    Py_DECREF(dev);
    if (b->dv == NULL)
        goto broken;
    if (!Py_IS_TYPE(b->blocks, &BlocksType) || !PyDict_Check(b->requests) ||
        !PyDict_Check(b->sites)) {
        PyErr_SetString(PyExc_RuntimeError,
                        "an account's blocks must be a Blocks, its requests and sites dicts");
        goto broken;
    }
    return 0;
broken:
    /* The account's books cannot be read (never so for the ledger's own accounts):
     * forget it rather than write half-read counters back to it. */
    books_clear(b);
    return -1;
}

/* ---- calls into Python ------------------------------------------------------------- */

static int
count_anomaly(PyObject *account, PyObject *kind)
{
    PyObject *result = PyObject_CallMethodOneArg(account, s_count_anomaly, kind);
    Py_XDECREF(result);
    return result == NULL ? -1 : 0;
}

/* account.count_anomaly(self._stray_kind(account, block, record, action)) */
static int
count_stray(Books *b, PyObject *block, PyObject *record, PyObject *action)
{
    PyObject *kind = PyObject_CallMethodObjArgs(b->self, s__stray_kind, b->account, block,
                                                record == NULL ? Py_None : record, action, NULL);
    if (kind == NULL)
        return -1;
    int result = count_anomaly(b->account, kind);
    Py_DECREF(kind);
    return result;
}

static int
call_method(PyObject *obj, PyObject *name, PyObject *a, PyObject *b, PyObject *c, PyObject *d)
{
    PyObject *result = PyObject_CallMethodObjArgs(obj, name, a, b, c, d, NULL);
    Py_XDECREF(result);
    return result == NULL ? -1 : 0;
}

static int
call_with_size(PyObject *obj, PyObject *name, PyObject *block, uint64_t size, PyObject *tags)
{
    PyObject *size_obj = PyLong_FromUnsignedLongLong(size);
    if (size_obj == NULL)
        return -1;
    int result = call_method(obj, name, block, size_obj, tags, NULL);
    Py_DECREF(size_obj);
    return result;
}

/* ``size != recorded`` as the reference evaluates it: 1, 0 or -1 (an error). */
static int
differs(PyObject *size, uint64_t recorded)
{
    int64_t small;
    if (small_int(size, &small))
        return small < 0 || (uint64_t)small != recorded;
    if (PyLong_CheckExact(size)) {
        int overflow;
        long long value = PyLong_AsLongLongAndOverflow(size, &overflow);
        if (overflow)
            return 1;
        if (value == -1 && PyErr_Occurred())
            return -1;
        return value < 0 || (uint64_t)value != recorded;
    }
    PyObject *recorded_obj = PyLong_FromUnsignedLongLong(recorded);
    if (recorded_obj == NULL)
        return -1;
    PyObject *result = PyObject_RichCompare(size, recorded_obj, Py_NE);
    Py_DECREF(recorded_obj);
    if (result == NULL)
        return -1;
    int truth = PyObject_IsTrue(result);
    Py_DECREF(result);
    return truth;
}

/* Which kind an event's kind compares equal to, in the reference's order of tests. */
static int
kind_of(PyObject *kind)
{
    if (PyLong_Check(kind) && Py_TYPE(kind)->tp_richcompare == PyLong_Type.tp_richcompare) {
        int64_t small;
        if (small_digits(kind, &small))
            return small >= 0 && small < UNKNOWN_KIND ? (int)small : UNKNOWN_KIND;
        int overflow;
        long value = PyLong_AsLongAndOverflow(kind, &overflow);
        if (value == -1 && PyErr_Occurred())
            return -1;
        if (overflow || value < 0 || value >= UNKNOWN_KIND)
            return UNKNOWN_KIND;
        return (int)value;
    }
    for (int i = 0; i < UNKNOWN_KIND; i++) {
        PyObject *result = PyObject_RichCompare(kind, kind_values[kind_order[i]], Py_EQ);
        if (result == NULL)
            return -1;
        int truth = PyObject_IsTrue(result);
        Py_DECREF(result);
        if (truth < 0)
            return -1;
        if (truth)
            return kind_order[i];
    }
    return UNKNOWN_KIND;
}

/* ``value if value.__class__ is int else operator.index(value)``: a new reference. */
static PyObject *
as_index(PyObject *value)
{
    if (PyLong_CheckExact(value)) {
        Py_INCREF(value);
        return value;
    }
    return PyNumber_Index(value);
}

/* The event's eleven fields, as unpacking it gives them: 0 when they are borrowed from
 * a tuple (which apply holds), 1 when they are new references, -1 for an error. */
static int
unpack(PyObject *event, PyObject **out)
{
    int is_tuple = PyTuple_Check(event) && Py_TYPE(event)->tp_iter == PyTuple_Type.tp_iter;
    if (is_tuple || PyList_CheckExact(event)) {
        Py_ssize_t n = PySequence_Fast_GET_SIZE(event);
        if (n != FIELDS) {
            PyErr_Format(PyExc_ValueError, "an event has %d fields, got %zd", FIELDS, n);
            return -1;
        }
        PyObject **items = PySequence_Fast_ITEMS(event);
        for (int i = 0; i < FIELDS; i++)
            out[i] = items[i];
        if (is_tuple)
            return 0;
        /* A list's items could change under a call back into Python: hold them. */
        for (int i = 0; i < FIELDS; i++)
            Py_INCREF(out[i]);
        return 1;
    }
    /* Anything else is iterated, as unpacking does: eleven items and then the end. */
    PyObject *iterator = PyObject_GetIter(event);
    if (iterator == NULL)
        return -1;
    int got = 0;
    for (; got < FIELDS; got++) {
        out[got] = PyIter_Next(iterator);
        if (out[got] == NULL)
            break;
    }
    if (got == FIELDS) {
        PyObject *extra = PyIter_Next(iterator);
        if (extra != NULL) {
            Py_DECREF(extra);
            PyErr_Format(PyExc_ValueError, "too many values to unpack (expected %d)", FIELDS);
        }
    }
    else if (!PyErr_Occurred())
        PyErr_Format(PyExc_ValueError, "not enough values to unpack (expected %d, got %d)",
                     FIELDS, got);
    Py_DECREF(iterator);
    if (PyErr_Occurred()) {
        for (int i = 0; i < got; i++)
            Py_DECREF(out[i]);
        return -1;
    }
    return 1;
}

/* ---- owners' books ------------------------------------------------------------------
 * The owners that events of one apply touch keep their bytes in use and peak in C
 * integers, as the accounts do, and go back to their OwnerAccount objects at the end of
 * apply (or when the cache is full). Nothing apply calls back into reads them. */

#define HOLDER_SLOTS 64
#define HOLDER_FILL 48

typedef struct {
    PyObject *holder; /* strong; NULL: an empty slot */
    i128 in_use, peak;
    int64_t index; /* the index its tag packs, -1 until read */
    int changed;
} Holder;

typedef struct {
    PyObject *owners, *holders, *dirty;
    i128 reserved, in_use, peak_reserved, peak_in_use;
    Holder cache[HOLDER_SLOTS];
    int cached;
} Totals;

/* Write every cached owner's books back and empty the cache. */
static int
holders_flush(Totals *t)
{
    int failed = 0;
    for (int i = 0; i < HOLDER_SLOTS; i++) {
        Holder *h = &t->cache[i];
        if (h->holder == NULL)
            continue;
        if (h->changed && !failed &&
            (put_i128(h->holder, O_IN_USE, h->in_use) < 0 ||
             put_i128(h->holder, O_PEAK_IN_USE, h->peak) < 0))
            failed = 1;
        Py_CLEAR(h->holder);
    }
    t->cached = 0;
    return failed ? -1 : 0;
}

/* The cache entry of *holder*, read from it the first time. */
static Holder *
holder_entry(Totals *t, PyObject *holder)
{
    size_t slot = ((uintptr_t)holder >> 4) % HOLDER_SLOTS;
    for (;; slot = (slot + 1) % HOLDER_SLOTS) {
        Holder *h = &t->cache[slot];
        if (h->holder == holder)
            return h;
        if (h->holder == NULL)
            break;
    }
    if (t->cached >= HOLDER_FILL) {
        if (holders_flush(t) < 0)
            return NULL;
        slot = ((uintptr_t)holder >> 4) % HOLDER_SLOTS;
    }
    Holder *h = &t->cache[slot];
    if (get_i128(holder, O_IN_USE, &h->in_use) < 0 ||
        get_i128(holder, O_PEAK_IN_USE, &h->peak) < 0)
        return NULL;
    Py_INCREF(holder);
    h->holder = holder;
    h->index = -1;
    h->changed = 0;
    t->cached++;
    return h;
}

/* ``holder.in_use += delta``, and the peak raised to it where *raise_peak*. */
static int
holder_add(Totals *t, PyObject *holder, i128 delta, int raise_peak)
{
    Holder *h = holder_entry(t, holder);
    if (h == NULL)
        return -1;
    h->in_use += delta;
    if (raise_peak && h->in_use > h->peak)
        h->peak = h->in_use;
    h->changed = 1;
    return 0;
}

/* The owner index a holder's tag packs (``tag >> 48``), or -1 with an error. */
static int64_t
holder_index(Totals *t, PyObject *holder)
{
    Holder *h = holder_entry(t, holder);
    if (h == NULL)
        return -1;
    if (h->index >= 0)
        return h->index;
    i128 tag;
    if (get_i128(holder, O_TAG, &tag) < 0)
        return -1;
    if (tag < 0 || (tag & SIZE_MASK) || (tag >> SIZE_BITS) > (i128)OWNER_MASK) {
        PyErr_SetString(PyExc_RuntimeError, "an owner's tag is not an index in its place");
        return -1;
    }
    return h->index = (int64_t)(tag >> SIZE_BITS);
}

/* The owner account at *index* of the ledger's table of holders (a new reference). */
static PyObject *
holder_at(PyObject *holders, uint64_t index)
{
    if (PyList_CheckExact(holders)) {
        if (index >= (uint64_t)PyList_GET_SIZE(holders)) {
            PyErr_SetString(PyExc_IndexError, "list index out of range");
            return NULL;
        }
        PyObject *holder = PyList_GET_ITEM(holders, (Py_ssize_t)index);
        Py_INCREF(holder);
        return holder;
    }
    return PySequence_GetItem(holders, (Py_ssize_t)index);
}

/* ``owners.get(owner) or self._open_owner(owner)`` (a new reference). */
static PyObject *
holder_of(Books *b, PyObject *owners, PyObject *owner, int *opened)
{
    PyObject *holder = PyDict_GetItemWithError(owners, owner);
    *opened = holder == NULL;
    if (holder != NULL) {
        Py_INCREF(holder);
        return holder;
    }
    if (PyErr_Occurred())
        return NULL;
    return PyObject_CallMethodOneArg(b->self, s__open_owner, owner);
}

static int
truth_of_tags(PyObject *tags)
{
    if (tags == Py_None)
        return 0;
    if (PyTuple_CheckExact(tags))
        return PyTuple_GET_SIZE(tags) != 0;
    return PyObject_IsTrue(tags);
}

/* ---- the kinds --------------------------------------------------------------------- */

#define RAISE_PEAK(value, peak) \
    if ((value) > (peak))       \
    (peak) = (value)

/* Bytes in use or reserved change on the account, its device and the ledger at once; an
 * increase raises each one's peak. */
static inline void
add_bytes(i128 delta, i128 *account, i128 *account_peak, i128 *device, i128 *device_peak,
          i128 *ledger, i128 *ledger_peak)
{
    *account += delta;
    *device += delta;
    *ledger += delta;
    if (delta > 0) {
        RAISE_PEAK(*account, *account_peak);
        RAISE_PEAK(*device, *device_peak);
        RAISE_PEAK(*ledger, *ledger_peak);
    }
}

#define add_in_use(b, t, delta)                                                         \
    add_bytes((delta), &(b)->in_use, &(b)->peak_in_use, &(b)->dv->in_use,                \
              &(b)->dv->peak_in_use, &(t)->in_use, &(t)->peak_in_use)
#define add_reserved(b, t, delta)                                                       \
    add_bytes((delta), &(b)->reserved, &(b)->peak_reserved, &(b)->dv->reserved,          \
              &(b)->dv->peak_reserved, &(t)->reserved, &(t)->peak_reserved)

#define TABLE(b) ((Blocks *)(b)->blocks)

/* Look *block* up: 1 with its id and entry, 0 when it is not there (*entry* NULL), -1
 * for an error. An entry pointer lasts until the table next changes: after a call into
 * Python (which could change it), look it up again (refind). */
static int
find_entry(Books *b, PyObject *block, int64_t *id, Entry **entry)
{
    *entry = NULL;
    int valid = small_int(block, id) ? *id >= 0 : bt_key(block, id);
    if (valid <= 0)
        return valid;
    *entry = bt_find(TABLE(b), *id);
    return *entry != NULL;
}

/* The entry of *id* again, after Python code ran; RuntimeError if that code took it. */
static Entry *
refind(Books *b, int64_t id)
{
    Entry *entry = bt_find(TABLE(b), id);
    if (entry == NULL)
        PyErr_SetString(PyExc_RuntimeError, "a live block vanished while an event was applied");
    return entry;
}

/* account.count_anomaly(self._stray_kind(account, block, record, action)) for a block
 * that is there: its record made for the call. */
static int
count_stray_at(Books *b, PyObject *block, const Entry *entry, PyObject *action)
{
    PyObject *record = bt_record(TABLE(b), entry);
    if (record == NULL)
        return -1;
    int result = count_stray(b, block, record, action);
    Py_DECREF(record);
    return result;
}

static int
apply_release(Books *b, Totals *t, PyObject *block, PyObject *size)
{
    Entry *entry;
    int64_t id;
    int found = find_entry(b, block, &id, &entry);
    if (found <= 0)
        return found < 0 ? -1 : count_stray(b, block, NULL, s_release);
    int64_t owner = bt_owner(TABLE(b), entry);
    if (owner < 0)
        return -1;
    if (!owner)
        return count_stray_at(b, block, entry, s_release);
    uint64_t recorded = entry->low & LOW_SIZE_MASK;
    int mismatch = differs(size, recorded);
    if (mismatch < 0 || (mismatch && count_anomaly(b->account, s_size_mismatch) < 0))
        return -1;
    /* No Python code ran since the look-up unless a size had to be compared in Python
     * or a mismatch counted. */
    if ((mismatch || !PyLong_CheckExact(size)) && (entry = refind(b, id)) == NULL)
        return -1;
    if (bt_set_owner(TABLE(b), entry, 0) < 0)
        return -1;
    PyObject *holder = holder_at(t->holders, (uint64_t)owner);
    if (holder == NULL)
        return -1;
    int failed = holder_add(t, holder, -(i128)recorded, 0);
    Py_DECREF(holder);
    if (failed)
        return -1;
    if (PyDict_GET_SIZE(b->requests) &&
        call_method(b->account, s_end_request, block, NULL, NULL, NULL) < 0)
        return -1;
    if (PyDict_GET_SIZE(b->sites) &&
        call_with_size(b->account, s_end_site, block, recorded, NULL) < 0)
        return -1;
    b->releases += 1;
    add_in_use(b, t, -(i128)recorded);
    return 0;
}

static int
apply_acquire(Books *b, Totals *t, PyObject *block, PyObject *size, PyObject *owner,
              PyObject *tags)
{
    Entry *entry;
    int64_t id;
    int found = find_entry(b, block, &id, &entry);
    if (found <= 0)
        return found < 0 ? -1 : count_stray(b, block, NULL, s_acquire);
    if (entry->low >> 48)
        return count_stray_at(b, block, entry, s_acquire);
    uint64_t recorded = entry->low & LOW_SIZE_MASK;
    int opened;
    PyObject *holder = holder_of(b, t->owners, owner, &opened);
    if (holder == NULL)
        return -1;
    int mismatch = differs(size, recorded);
    if (mismatch < 0 || (mismatch && count_anomaly(b->account, s_size_mismatch) < 0))
        goto fail;
    int64_t index = holder_index(t, holder);
    if (index < 0)
        goto fail;
    int trusted = !opened && !mismatch && PyLong_CheckExact(size) && PyUnicode_CheckExact(owner);
    if ((!trusted && (entry = refind(b, id)) == NULL) ||
        bt_set_owner(TABLE(b), entry, (uint64_t)index) < 0 ||
        holder_add(t, holder, recorded, 1) < 0)
        goto fail;
    Py_DECREF(holder);
    b->acquires += 1;
    add_in_use(b, t, recorded);
    int tagged = truth_of_tags(tags);
    if (tagged < 0 || (tagged && call_with_size(b->account, s_note_tags, block, recorded, tags) < 0))
        return -1;
    return 0;
fail:
    Py_DECREF(holder);
    return -1;
}

static int
apply_alloc(Books *b, Totals *t, PyObject *block, PyObject *size_in, PyObject *owner,
            PyObject *ts_in, PyObject *tags)
{
    /* numpy integers are welcome; floats and strings fail here, before anything has
     * changed (and count as malformed). */
    PyObject *size = as_index(size_in);
    if (size == NULL)
        return -1;
    PyObject *ts = NULL, *holder = NULL;
    int64_t size_value, block_value = 0, time;
    int fits = fits_i64(size, &size_value);
    if (fits < 0)
        goto fail;
    if (!fits || size_value < 0 || (uint64_t)size_value > SIZE_MASK) {
        Py_DECREF(size);
        return count_anomaly(b->account, s_bad_size);
    }
    /* The block id and time go to a snapshot's int64 columns. */
    fits = PyLong_CheckExact(block) ? fits_i64(block, &block_value) : 0;
    if (fits < 0)
        goto fail;
    if (!fits || block_value < 0) {
        Py_DECREF(size);
        return count_anomaly(b->account, s_bad_block);
    }
    if (bt_find(TABLE(b), block_value) != NULL) {
        Py_DECREF(size);
        return count_anomaly(b->account, s_duplicate_alloc);
    }
    if ((ts = as_index(ts_in)) == NULL || (fits = fits_i64(ts, &time)) < 0)
        goto fail;
    if (!fits) {
        Py_DECREF(size);
        Py_DECREF(ts);
        return count_anomaly(b->account, s_bad_timestamp);
    }
    int opened;
    if ((holder = holder_of(b, t->owners, owner, &opened)) == NULL)
        goto fail;
    int64_t index = holder_index(t, holder);
    if (index < 0)
        goto fail;
    uint64_t low = (uint64_t)size_value | ((uint64_t)(index < WIDE_OWNER ? index : 0) << 48);
    Entry *entry = bt_insert(TABLE(b), block_value, time, low);
    if (entry == NULL)
        goto fail;
    if (index >= WIDE_OWNER && bt_set_owner(TABLE(b), entry, (uint64_t)index) < 0) {
        int64_t slot = bt_slot(TABLE(b), block_value);
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        bt_delete(TABLE(b), slot); /* not wide yet: nothing in the dict to fail */
        PyErr_Restore(type, value, tb);
        goto fail;
    }
    int bucket = 0;
    for (uint64_t rest = (uint64_t)size_value; rest; rest >>= 1)
        bucket++;
    b->histogram_added[bucket] += 1;
    b->histogram_changed = 1;
    if (holder_add(t, holder, size_value, 1) < 0)
        goto fail;
    b->allocations += 1;
    b->bytes_allocated += size_value;
    add_reserved(b, t, size_value);
    add_in_use(b, t, size_value);
    int tagged = truth_of_tags(tags);
    if (tagged < 0 ||
        (tagged && call_method(b->account, s_note_tags, block, size, tags, NULL) < 0))
        goto fail;
    Py_DECREF(size);
    Py_DECREF(ts);
    Py_DECREF(holder);
    return 0;
fail:
    Py_DECREF(size);
    Py_XDECREF(ts);
    Py_XDECREF(holder);
    return -1;
}

/* ``account.lifetime_total_ns += lifetime`` and ``if lifetime > account.lifetime_max_ns:
 * account.lifetime_max_ns = lifetime``: in C integers where they fit, else Python ints
 * (*big* is the lifetime when it is beyond 64 bits, else NULL). */
static int
note_lifetime(PyObject *account, i128 lifetime, PyObject *big)
{
    PyObject *total = get(account, A_LIFETIME_TOTAL), *as_object = big, *sum;
    if (total == NULL)
        return -1;
    int64_t small;
    int fits = big == NULL && PyLong_CheckExact(total) ? fits_i64(total, &small) : 0;
    if (fits > 0)
        sum = from_i128(small + lifetime);
    else if (fits == 0 && (as_object != NULL || (as_object = from_i128(lifetime)) != NULL))
        sum = PyNumber_Add(total, as_object);
    else
        sum = NULL;
    Py_DECREF(total);
    int failed = put(account, A_LIFETIME_TOTAL, sum) < 0;
    PyObject *longest = failed ? NULL : get(account, A_LIFETIME_MAX);
    if (longest == NULL)
        goto fail;
    int longer;
    fits = as_object == NULL && PyLong_CheckExact(longest) ? fits_i64(longest, &small) : 0;
    if (fits > 0)
        longer = lifetime > small;
    else if (fits == 0 && (as_object != NULL || (as_object = from_i128(lifetime)) != NULL))
        longer = PyObject_RichCompareBool(as_object, longest, Py_GT);
    else
        longer = -1;
    Py_DECREF(longest);
    if (longer < 0)
        goto fail;
    if (longer) {
        PyObject *value = as_object != NULL ? as_object : from_i128(lifetime);
        Py_XINCREF(as_object);
        if (put(account, A_LIFETIME_MAX, value) < 0)
            goto fail;
    }
    if (as_object != big)
        Py_XDECREF(as_object);
    return 0;
fail:
    if (as_object != big)
        Py_XDECREF(as_object);
    return -1;
}

static int
apply_free(Books *b, Totals *t, PyObject *block, PyObject *size, PyObject *ts_in)
{
    if (lifetimes_unload(b) < 0)
        return -1;
    Entry *entry;
    int64_t id;
    int found = find_entry(b, block, &id, &entry);
    if (found < 0)
        return -1;
    if (!found) {
        PyObject *freed = PyObject_CallMethodOneArg(b->account, s_was_freed, block);
        if (freed == NULL)
            return -1;
        int truth = PyObject_IsTrue(freed);
        Py_DECREF(freed);
        if (truth < 0)
            return -1;
        return count_anomaly(b->account, truth ? s_double_free : s_unknown_block);
    }
    int64_t owner = bt_owner(TABLE(b), entry);
    if (owner < 0)
        return -1;
    uint64_t recorded = entry->low & LOW_SIZE_MASK;
    int64_t allocated = entry->time;
    PyObject *ts = as_index(ts_in);
    if (ts == NULL)
        return -1;
    /* lifetime = ts - allocation time; a Python int when the time is beyond 64 bits. */
    int64_t time;
    i128 lifetime = 0;
    PyObject *big_lifetime = NULL;
    int fits = fits_i64(ts, &time);
    if (fits > 0)
        lifetime = (i128)time - allocated;
    else if (fits == 0) {
        PyObject *allocated_obj = PyLong_FromLongLong(allocated);
        if (allocated_obj != NULL) {
            big_lifetime = PyNumber_Subtract(ts, allocated_obj);
            Py_DECREF(allocated_obj);
        }
    }
    Py_DECREF(ts);
    if (fits < 0 || (fits == 0 && big_lifetime == NULL))
        return -1;
    /* as_index ran Python code unless the time was an int: find the slot again then. */
    int64_t slot = bt_slot(TABLE(b), id);
    if (slot < 0) {
        PyErr_SetString(PyExc_RuntimeError, "a live block vanished while an event was applied");
        Py_XDECREF(big_lifetime);
        return -1;
    }
    int failed = 0;
#define CHECK(call)     \
    if ((call) < 0) {   \
        failed = 1;     \
        goto done;      \
    }
    CHECK(bt_delete(TABLE(b), slot));
    int mismatch;
    CHECK(mismatch = differs(size, recorded));
    if (mismatch)
        CHECK(count_anomaly(b->account, s_size_mismatch));
    b->frees += 1;
    add_reserved(b, t, -(i128)recorded);
    if (owner) {
        PyObject *holder = holder_at(t->holders, (uint64_t)owner);
        if (holder == NULL) {
            failed = 1;
            goto done;
        }
        int added = holder_add(t, holder, -(i128)recorded, 0);
        Py_DECREF(holder);
        CHECK(added);
        add_in_use(b, t, -(i128)recorded);
        if (PyDict_GET_SIZE(b->requests))
            CHECK(call_method(b->account, s_end_request, block, NULL, NULL, NULL));
        if (PyDict_GET_SIZE(b->sites))
            CHECK(call_with_size(b->account, s_end_site, block, recorded, NULL));
    }
    if (big_lifetime != NULL) {
        int positive;
        CHECK(positive = PyObject_RichCompareBool(big_lifetime, zero, Py_GT));
        if (positive)
            CHECK(note_lifetime(b->account, 0, big_lifetime));
    }
    else if (lifetime > 0)
        CHECK(note_lifetime(b->account, lifetime, NULL));
    i128 lifetimes;
    CHECK(get_i128(b->account, A_LIFETIMES, &lifetimes));
    CHECK(put_i128(b->account, A_LIFETIMES, lifetimes + 1));
    PyObject *freed = get(b->account, A_FREED);
    if (freed == NULL) {
        failed = 1;
        goto done;
    }
    int added;
    if (PySet_CheckExact(freed))
        added = PySet_Add(freed, block);
    else {
        PyObject *result = PyObject_CallMethodOneArg(freed, s_add, block);
        Py_XDECREF(result);
        added = result == NULL ? -1 : 0;
    }
    Py_ssize_t remembered = added < 0 ? -1 : PyObject_Length(freed);
    Py_DECREF(freed);
    CHECK(remembered);
    i128 limit;
    CHECK(get_i128(b->account, A_FREE_LIMIT, &limit));
    if (remembered >= limit) {
        PyObject *result = PyObject_CallMethodNoArgs(b->account, s_forget_old_frees);
        Py_XDECREF(result);
        CHECK(result == NULL ? -1 : 0);
    }
done:
#undef CHECK
    Py_XDECREF(big_lifetime);
    return failed ? -1 : 0;
}

static int
apply_resize(Books *b, Totals *t, PyObject *block, PyObject *size_in, PyObject *old_size,
             PyObject *tags)
{
    Entry *entry;
    int64_t id;
    int found = find_entry(b, block, &id, &entry);
    if (found <= 0)
        return found < 0 ? -1 : count_stray(b, block, NULL, s_resize);
    int64_t owner = bt_owner(TABLE(b), entry);
    if (owner < 0)
        return -1;
    uint64_t recorded = entry->low & LOW_SIZE_MASK;
    PyObject *size = as_index(size_in);
    if (size == NULL)
        return -1;
    int64_t size_value;
    int fits = fits_i64(size, &size_value);
    if (fits < 0)
        goto fail;
    if (!fits || size_value < 0 || (uint64_t)size_value > SIZE_MASK) {
        Py_DECREF(size);
        return count_anomaly(b->account, s_bad_size);
    }
    int mismatch = differs(old_size, recorded);
    if (mismatch < 0 || (mismatch && count_anomaly(b->account, s_size_mismatch) < 0))
        goto fail;
    i128 delta = (i128)size_value - (i128)recorded;
    int trusted = !mismatch && PyLong_CheckExact(size_in) && PyLong_CheckExact(old_size);
    if (!trusted && (entry = refind(b, id)) == NULL)
        goto fail;
    entry->low = (entry->low & ~LOW_SIZE_MASK) | (uint64_t)size_value;
    int failed = 0;
    i128 resizes;
    if (failed || get_i128(b->account, A_RESIZES, &resizes) < 0 ||
        put_i128(b->account, A_RESIZES, resizes + 1) < 0)
        goto fail;
    if (delta > 0)
        b->bytes_allocated += delta;
    add_reserved(b, t, delta);
    if (owner) {
        PyObject *holder = holder_at(t->holders, (uint64_t)owner);
        if (holder == NULL)
            goto fail;
        failed = holder_add(t, holder, delta, 1);
        Py_DECREF(holder);
        if (failed)
            goto fail;
        add_in_use(b, t, delta);
        int tagged = truth_of_tags(tags);
        if (tagged < 0)
            goto fail;
        if (tagged || PyDict_GET_SIZE(b->sites)) {
            PyObject *recorded_obj = PyLong_FromUnsignedLongLong(recorded);
            if (recorded_obj == NULL)
                goto fail;
            failed = call_method(b->account, s_resize_site, block, recorded_obj, size, tags);
            Py_DECREF(recorded_obj);
            if (failed)
                goto fail;
        }
    }
    Py_DECREF(size);
    return 0;
fail:
    Py_DECREF(size);
    return -1;
}

/* ---- records: the common events straight from a Batch's C fields -------------------
 * Each returns 1 when it applied the event, 0 when the event is not for the fast path
 * (an anomaly, tags, requested sizes or sites to keep, a wide owner: nothing has
 * changed, and the event goes the way of a tuple's), -1 on error. The order of the
 * steps, and of any call into Python, is the reference's. */

static inline int
no_tags(PyObject *tags)
{
    return PyTuple_CheckExact(tags) && PyTuple_GET_SIZE(tags) == 0;
}

static int
fast_alloc(Books *b, Totals *t, const EventRecord *r)
{
    if (r->size < 0 || (uint64_t)r->size > SIZE_MASK || r->block < 0 || !no_tags(r->tags) ||
        !PyUnicode_CheckExact(r->owner) || bt_find(TABLE(b), r->block) != NULL)
        return 0;
    uint64_t size = (uint64_t)r->size;
    int64_t block = r->block, time = r->ts;
    PyObject *owner = r->owner;
    Py_INCREF(owner); /* opening an owner runs Python code */
    int opened;
    PyObject *holder = holder_of(b, t->owners, owner, &opened);
    Py_DECREF(owner);
    if (holder == NULL)
        return -1;
    int64_t index = holder_index(t, holder);
    Entry *entry = NULL;
    if (index >= 0 && index < WIDE_OWNER)
        entry = bt_insert(TABLE(b), block, time, size | ((uint64_t)index << 48));
    if (entry == NULL || holder_add(t, holder, size, 1) < 0) {
        Py_DECREF(holder);
        return index >= WIDE_OWNER ? 0 : -1;
    }
    Py_DECREF(holder);
    int bucket = size ? 64 - __builtin_clzll(size) : 0;
    b->histogram_added[bucket] += 1;
    b->histogram_changed = 1;
    b->allocations += 1;
    b->bytes_allocated += size;
    add_reserved(b, t, (i128)size);
    add_in_use(b, t, (i128)size);
    return 1;
}

/* RELEASE (lend_to 0) or ACQUIRE of a block that is there, cached or lent as it must be,
 * with the size it has. */
static int
fast_lend(Books *b, Totals *t, const EventRecord *r, int acquire)
{
    if (r->block < 0 || PyDict_GET_SIZE(b->requests) || PyDict_GET_SIZE(b->sites))
        return 0;
    Entry *entry = bt_find(TABLE(b), r->block);
    if (entry == NULL)
        return 0;
    uint64_t owner = entry->low >> 48, recorded = entry->low & LOW_SIZE_MASK;
    if (owner == WIDE_OWNER || (acquire ? owner != 0 : owner == 0) || r->size < 0 ||
        (uint64_t)r->size != recorded)
        return 0;
    if (!acquire) {
        /* The reference returns the block to its pool before it reaches the owner. */
        entry->low = recorded;
        PyObject *holder = holder_at(t->holders, owner);
        if (holder == NULL)
            return -1;
        int failed = holder_add(t, holder, -(i128)recorded, 0);
        Py_DECREF(holder);
        if (failed)
            return -1;
        b->releases += 1;
        add_in_use(b, t, -(i128)recorded);
        return 1;
    }
    if (!no_tags(r->tags) || !PyUnicode_CheckExact(r->owner))
        return 0;
    PyObject *who = r->owner;
    Py_INCREF(who);
    int opened;
    PyObject *holder = holder_of(b, t->owners, who, &opened);
    Py_DECREF(who);
    if (holder == NULL)
        return -1;
    int64_t index = holder_index(t, holder);
    if (index < 0 || index >= WIDE_OWNER || (opened && (entry = refind(b, r->block)) == NULL)) {
        Py_DECREF(holder);
        return index >= WIDE_OWNER ? 0 : -1;
    }
    if (holder_add(t, holder, recorded, 1) < 0) {
        Py_DECREF(holder);
        return -1;
    }
    Py_DECREF(holder);
    entry->low = recorded | ((uint64_t)index << 48);
    b->acquires += 1;
    add_in_use(b, t, recorded);
    return 1;
}

static int
fast_free(Books *b, Totals *t, const EventRecord *r)
{
    Blocks *table = TABLE(b);
    int64_t slot = r->block < 0 ? -1 : bt_slot(table, r->block);
    if (slot < 0)
        return 0;
    Entry *entry = &table->entries[table->index[slot]];
    uint64_t owner = entry->low >> 48, recorded = entry->low & LOW_SIZE_MASK;
    if (owner == WIDE_OWNER || r->size < 0 || (uint64_t)r->size != recorded ||
        (owner && (PyDict_GET_SIZE(b->requests) || PyDict_GET_SIZE(b->sites))))
        return 0;
    if (!b->lifetimes_loaded) {
        int loaded = lifetimes_load(b);
        if (loaded <= 0)
            return loaded;
    }
    i128 lifetime = (i128)r->ts - entry->time;
    /* A total that a Python int would carry past 128 bits: the tuple's way sums it. */
    if (lifetime > 0 && b->lifetime_total > I128_MAX - lifetime)
        return 0;
    PyObject *id = PyLong_FromLongLong(r->block);
    if (id == NULL)
        return -1;
    /* As in the reference, a step that fails leaves the counters after it unchanged. */
    int failed = bt_delete(table, slot) < 0;
    if (!failed) {
        b->frees += 1;
        add_reserved(b, t, -(i128)recorded);
    }
    if (owner && !failed) {
        PyObject *holder = holder_at(t->holders, owner);
        failed = holder == NULL || holder_add(t, holder, -(i128)recorded, 0) < 0;
        Py_XDECREF(holder);
        if (!failed)
            add_in_use(b, t, -(i128)recorded);
    }
    if (failed) {
        Py_DECREF(id);
        return -1;
    }
    if (lifetime > 0) {
        b->lifetime_total += lifetime;
        RAISE_PEAK(lifetime, b->lifetime_max);
    }
    b->lifetimes += 1;
    failed = PySet_Add(b->freed, id) < 0;
    Py_DECREF(id);
    if (!failed && PySet_GET_SIZE(b->freed) >= b->free_limit) {
        /* A new generation: the account's method swaps its sets; take the new one. */
        PyObject *result = PyObject_CallMethodNoArgs(b->account, s_forget_old_frees);
        Py_XDECREF(result);
        PyObject *freed = result == NULL ? NULL : get(b->account, A_FREED);
        if (freed != NULL && !PySet_CheckExact(freed)) {
            Py_DECREF(freed);
            freed = NULL;
            PyErr_SetString(PyExc_RuntimeError, "an account's freed ids must be a set");
        }
        if (freed == NULL)
            failed = 1;
        else
            Py_SETREF(b->freed, freed);
    }
    return failed ? -1 : 1;
}

/* The event's eleven fields as the objects a tuple of it holds (new references). */
static int
record_fields(const EventRecord *r, PyObject **f)
{
    PyObject *ints[5] = {PyLong_FromLongLong(r->block), PyLong_FromLongLong(r->size),
                         PyLong_FromLongLong(r->ts), PyLong_FromLongLong(r->old_size),
                         PyLong_FromLongLong(r->seq)};
    PyObject *kind = r->kind >= 0 && r->kind < UNKNOWN_KIND ? kind_values[r->kind]
                                                             : PyLong_FromLong(r->kind);
    if (r->kind >= 0 && r->kind < UNKNOWN_KIND)
        Py_XINCREF(kind);
    if (kind == NULL || ints[0] == NULL || ints[1] == NULL || ints[2] == NULL ||
        ints[3] == NULL || ints[4] == NULL) {
        Py_XDECREF(kind);
        for (int i = 0; i < 5; i++)
            Py_XDECREF(ints[i]);
        return -1;
    }
    PyObject *made[FIELDS] = {kind,     r->component, ints[0], ints[1], r->device, r->owner,
                              ints[2], ints[3],      r->dst,  r->tags, ints[4]};
    for (int i = 0; i < FIELDS; i++) {
        f[i] = made[i];
        if (i == 1 || i == 4 || i == 5 || i == 8 || i == 9)
            Py_INCREF(f[i]);
    }
    return 0;
}

/* ---- apply ------------------------------------------------------------------------- */

static int
load_total(PyObject *self, PyObject *name, i128 *out)
{
    return take_i128(PyObject_GetAttr(self, name), out);
}

/* ``self.<name> = value``, stealing the reference to value (NULL: an error). */
static int
set_attr(PyObject *self, PyObject *name, PyObject *value)
{
    if (value == NULL)
        return -1;
    int result = PyObject_SetAttr(self, name, value);
    Py_DECREF(value);
    return result;
}

static int
store_total(PyObject *self, PyObject *name, i128 value)
{
    return set_attr(self, name, from_i128(value));
}

/* ``self.<name> += count`` */
static int
add_to_attr(PyObject *self, PyObject *name, Py_ssize_t count)
{
    PyObject *before = PyObject_GetAttr(self, name);
    if (before == NULL)
        return -1;
    PyObject *added = PyLong_FromSsize_t(count);
    PyObject *after = added == NULL ? NULL : PyNumber_Add(before, added);
    Py_DECREF(before);
    Py_XDECREF(added);
    return set_attr(self, name, after);
}

/* The books apply holds: up to BOOK_SLOTS accounts at once, so that a round whose
 * batches interleave a few components does not write one's counters back and read the
 * next one's at every event. Each slot is reached by the (component, device) objects
 * that last named it (an equal pair of other objects finds it through the account). */
typedef struct {
    Books books[BOOK_SLOTS];
    PyObject *names[BOOK_SLOTS][2]; /* strong */
    Dev devs[BOOK_SLOTS];
    int victim;
} Shelf;

/* Write every held account's and device's counters back: 0, or -1 with the error of
 * the first that failed (the rest are not tried). */
static int
shelf_store(Shelf *shelf)
{
    for (int i = 0; i < BOOK_SLOTS; i++)
        if (shelf->books[i].account != NULL && books_store(&shelf->books[i]) < 0)
            return -1;
    return 0;
}

/* Let go of every account, device and name held (nothing is written). */
static void
shelf_clear(Shelf *shelf)
{
    for (int i = 0; i < BOOK_SLOTS; i++) {
        books_clear(&shelf->books[i]);
        Py_CLEAR(shelf->names[i][0]);
        Py_CLEAR(shelf->names[i][1]);
    }
}

/* The books of (component, device): held already, or the account found or opened, marked
 * changed and read into a slot (whose account, if any, is written back first). */
static Books *
switch_books(Shelf *shelf, Totals *t, PyObject *accounts, PyObject *component,
             PyObject *device)
{
    for (int i = 0; i < BOOK_SLOTS; i++)
        if (shelf->names[i][0] == component && shelf->names[i][1] == device &&
            shelf->books[i].account != NULL)
            return &shelf->books[i];
    PyObject *key = PyTuple_Pack(2, component, device);
    if (key == NULL)
        return NULL;
    PyObject *account = PyDict_GetItemWithError(accounts, key);
    Py_DECREF(key);
    if (account != NULL)
        Py_INCREF(account);
    else if (PyErr_Occurred())
        return NULL;
    else if ((account = PyObject_CallMethodObjArgs(shelf->books[0].self, s__open_account,
                                                   component, device, NULL)) == NULL)
        return NULL;
    int slot = -1;
    for (int i = 0; i < BOOK_SLOTS && slot < 0; i++)
        if (shelf->books[i].account == account)
            slot = i;
    if (slot < 0) {
        for (int i = 0; i < BOOK_SLOTS && slot < 0; i++)
            if (shelf->books[i].account == NULL)
                slot = i;
        if (slot < 0) {
            slot = shelf->victim;
            shelf->victim = (shelf->victim + 1) % BOOK_SLOTS;
            if (books_store(&shelf->books[slot]) < 0) {
                Py_DECREF(account);
                return NULL;
            }
            books_clear(&shelf->books[slot]);
        }
        int marked;
        if (PySet_CheckExact(t->dirty))
            marked = PySet_Add(t->dirty, account);
        else {
            PyObject *result = PyObject_CallMethodOneArg(t->dirty, s_add, account);
            Py_XDECREF(result);
            marked = result == NULL ? -1 : 0;
        }
        if (marked < 0) {
            Py_DECREF(account);
            return NULL;
        }
        if (books_load(&shelf->books[slot], account, shelf->devs) < 0)
            return NULL;
    }
    else
        Py_DECREF(account);
    Py_INCREF(component);
    Py_XSETREF(shelf->names[slot][0], component);
    Py_INCREF(device);
    Py_XSETREF(shelf->names[slot][1], device);
    return &shelf->books[slot];
}

static inline Py_ssize_t
count_of(PyObject *events, int records)
{
    return records ? ((EventBatchObject *)events)->length : PySequence_Fast_GET_SIZE(events);
}

static PyObject *
apply(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "apply(ledger, events) takes two arguments");
        return NULL;
    }
    if (classes[ACCOUNT] == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "memactor._native._ledger.bind() was not called");
        return NULL;
    }
    PyObject *self = args[0], *events = args[1];
    int records = batch_type != NULL && Py_IS_TYPE(events, batch_type);
    if (!records && !PyList_CheckExact(events) && !PyTuple_CheckExact(events)) {
        PyErr_Format(PyExc_TypeError, "events must be a list, a tuple or a Batch, got %T",
                     events);
        return NULL;
    }
    Py_INCREF(events); /* a Batch's records are read in place: keep it alive */
    static const Shelf empty_shelf;
    Shelf shelf = empty_shelf;
    for (int i = 0; i < BOOK_SLOTS; i++)
        shelf.books[i].self = self;
    Books *b = &shelf.books[0];
    static const Totals empty;
    Totals t = empty;
    PyObject *accounts = NULL;
    PyObject *last_component = NULL, *last_device = NULL;
    PyObject *failure_type = NULL, *failure_value = NULL, *failure_tb = NULL;
    Py_ssize_t malformed = 0, index = 0;
    if ((t.owners = PyObject_GetAttr(self, s__owners)) == NULL ||
        (t.holders = PyObject_GetAttr(self, s__holders)) == NULL ||
        (t.dirty = PyObject_GetAttr(self, s__dirty)) == NULL ||
        (accounts = PyObject_GetAttr(self, s__accounts)) == NULL ||
        load_total(self, s__reserved, &t.reserved) < 0 ||
        load_total(self, s__in_use, &t.in_use) < 0 ||
        load_total(self, s__peak_reserved, &t.peak_reserved) < 0 ||
        load_total(self, s__peak_in_use, &t.peak_in_use) < 0)
        goto out;
    if (!PyDict_Check(t.owners) || !PyDict_Check(accounts)) {
        PyErr_SetString(PyExc_RuntimeError, "the ledger's owners and accounts must be dicts");
        goto out;
    }

    for (; index < count_of(events, records); index++) {
        PyObject *f[FIELDS];
        int owned = 0, failed = 0, done = 0;
        PyObject *event = NULL;
        EventRecord *r = records ? &((EventBatchObject *)events)->records[index] : NULL;
        /* Python code the event calls (opening an account or owner) may append to, pop
         * or clear the Batch, moving or freeing its records: work on a copy of this one
         * that holds its own references. */
        EventRecord held;
        if (r != NULL && r->boxed == NULL) {
            held = *r;
            r = &held;
            Py_INCREF(held.component);
            Py_INCREF(held.device);
            Py_INCREF(held.owner);
            Py_INCREF(held.tags);
            Py_INCREF(held.dst);
        }
        if (r == &held) {
            if (r->component != last_component || r->device != last_device) {
                Books *next = switch_books(&shelf, &t, accounts, r->component, r->device);
                failed = next == NULL;
                if (!failed) {
                    b = next;
                    Py_INCREF(r->component);
                    Py_XSETREF(last_component, r->component);
                    Py_INCREF(r->device);
                    Py_XSETREF(last_device, r->device);
                }
            }
            if (!failed) {
                switch (r->kind) {
                case ALLOC:
                    done = fast_alloc(b, &t, r);
                    break;
                case FREE:
                    done = fast_free(b, &t, r);
                    break;
                case RELEASE:
                case ACQUIRE:
                    done = fast_lend(b, &t, r, r->kind == ACQUIRE);
                    break;
                }
                failed = done < 0;
                if (!done && (failed = record_fields(r, f) < 0) == 0)
                    owned = 1;
            }
        }
        else {
            event = r != NULL ? r->boxed : PySequence_Fast_GET_ITEM(events, index);
            Py_INCREF(event);
            owned = unpack(event, f);
            failed = owned < 0;
        }
        if (!failed && !done) {
            PyObject *component = f[1], *device = f[4];
            if (component != last_component || device != last_device) {
                Books *next = switch_books(&shelf, &t, accounts, component, device);
                failed = next == NULL;
                if (!failed) {
                    b = next;
                    Py_INCREF(component);
                    Py_XSETREF(last_component, component);
                    Py_INCREF(device);
                    Py_XSETREF(last_device, device);
                }
            }
            int kind = failed ? -1 : kind_of(f[0]);
            PyObject *block = f[2], *size = f[3], *owner = f[5], *ts = f[6], *tags = f[9];
            switch (kind) {
            case -1:
                failed = 1;
                break;
            case RELEASE:
                failed = apply_release(b, &t, block, size);
                break;
            case ACQUIRE:
                failed = apply_acquire(b, &t, block, size, owner, tags);
                break;
            case ALLOC:
                failed = apply_alloc(b, &t, block, size, owner, ts, tags);
                break;
            case FREE:
                failed = apply_free(b, &t, block, size, ts);
                break;
            case RESIZE:
                failed = apply_resize(b, &t, block, size, f[7], tags);
                break;
            case TRANSFER: {
                PyObject *result = PyObject_CallMethodObjArgs(self, s__transfer, b->account,
                                                              size, device, f[8], tags, NULL);
                Py_XDECREF(result);
                failed = result == NULL;
                break;
            }
            default:
                failed = count_anomaly(b->account, s_unknown_kind);
            }
        }
        if (owned > 0)
            for (int i = 0; i < FIELDS; i++)
                Py_DECREF(f[i]);
        Py_XDECREF(event);
        if (r == &held) {
            Py_DECREF(held.component);
            Py_DECREF(held.device);
            Py_DECREF(held.owner);
            Py_DECREF(held.tags);
            Py_DECREF(held.dst);
        }
        if (!failed)
            continue;
        if (PyErr_ExceptionMatches(malformed_errors)) {
            /* Wrong arity, a non-string component, a non-integer size: counted. */
            PyErr_Clear();
            malformed += 1;
            Py_CLEAR(last_component);
            Py_CLEAR(last_device);
            continue;
        }
        /* Not the event's fault: keep the books of the events before it, raise it. */
        PyErr_Fetch(&failure_type, &failure_value, &failure_tb);
        break;
    }

    if (holders_flush(&t) < 0 || shelf_store(&shelf) < 0 ||
        store_total(self, s__reserved, t.reserved) < 0 ||
        store_total(self, s__in_use, t.in_use) < 0 ||
        store_total(self, s__peak_reserved, t.peak_reserved) < 0 ||
        store_total(self, s__peak_in_use, t.peak_in_use) < 0)
        goto out;
    Py_ssize_t total = count_of(events, records);
    Py_ssize_t applied = failure_type != NULL ? index : total;
    if ((malformed && add_to_attr(self, s__malformed, malformed) < 0) ||
        add_to_attr(self, s__events_applied, applied) < 0)
        goto out;

out:
    for (int i = 0; i < HOLDER_SLOTS; i++)
        Py_XDECREF(t.cache[i].holder);
    shelf_clear(&shelf);
    Py_XDECREF(t.owners);
    Py_XDECREF(t.holders);
    Py_XDECREF(t.dirty);
    Py_XDECREF(accounts);
    Py_XDECREF(last_component);
    Py_XDECREF(last_device);
    if (failure_type != NULL) {
        if (PyErr_Occurred()) {
            /* Storing the books failed too: raise that error (the books are not whole),
             * and drop the one the loop stopped on. */
            Py_XDECREF(failure_type);
            Py_XDECREF(failure_value);
            Py_XDECREF(failure_tb);
        }
        else
            PyErr_Restore(failure_type, failure_value, failure_tb);
        Py_DECREF(events);
        return NULL;
    }
    Py_ssize_t length = count_of(events, records);
    Py_DECREF(events);
    if (PyErr_Occurred())
        return NULL;
    return PyLong_FromSsize_t(length);
}

/* ---- bind: the classes whose slots apply reads ------------------------------------ */

static PyObject *
bind(PyObject *module, PyObject *args)
{
    PyObject *cls[CLASSES], *kinds, *layout;
    if (!PyArg_ParseTuple(args, "O!O!O!O!O!:bind", &PyType_Type, &cls[ACCOUNT], &PyType_Type,
                          &cls[DEVICE], &PyType_Type, &cls[OWNER], &PyTuple_Type, &kinds,
                          &PyTuple_Type, &layout))
        return NULL;
    long expected[4] = {SIZE_BITS, OWNER_BITS, HISTOGRAM_BUCKETS, FIELDS};
    if (PyTuple_GET_SIZE(layout) != 4 || PyTuple_GET_SIZE(kinds) != UNKNOWN_KIND) {
        PyErr_SetString(PyExc_ValueError, "bind: layout has 4 numbers, kinds 6");
        return NULL;
    }
    for (int i = 0; i < 4; i++) {
        long value = PyLong_AsLong(PyTuple_GET_ITEM(layout, i));
        if (value == -1 && PyErr_Occurred())
            return NULL;
        if (value != expected[i]) {
            PyErr_Format(PyExc_ValueError,
                         "memactor's compiled ledger was built for another record layout "
                         "(item %d is %ld, built for %ld)", i, value, expected[i]);
            return NULL;
        }
    }
    for (int i = 0; i < UNKNOWN_KIND; i++) {
        PyObject *kind = PyTuple_GET_ITEM(kinds, i);
        long value = PyLong_AsLong(kind);
        if (value == -1 && PyErr_Occurred())
            return NULL;
        if (value != i) {
            PyErr_Format(PyExc_ValueError, "bind: kind %d has the value %ld", i, value);
            return NULL;
        }
        Py_INCREF(kind);
        Py_XSETREF(kind_values[i], kind);
    }
    for (int f = 0; f < FIELD_COUNT; f++) {
        Field *field = &fields[f];
        PyObject *descr = PyObject_GetAttrString(cls[field->cls], field->name);
        if (descr == NULL)
            return NULL;
        int is_slot = Py_IS_TYPE(descr, &PyMemberDescr_Type) &&
                      ((PyMemberDescrObject *)descr)->d_member->type == T_OBJECT_EX;
        if (is_slot)
            field->offset = ((PyMemberDescrObject *)descr)->d_member->offset;
        Py_DECREF(descr);
        if (!is_slot) {
            PyErr_Format(PyExc_TypeError, "bind: %R.%s is not a slot", cls[field->cls],
                         field->name);
            return NULL;
        }
        if (field->name_obj == NULL &&
            (field->name_obj = PyUnicode_InternFromString(field->name)) == NULL)
            return NULL;
    }
    for (int i = 0; i < CLASSES; i++) {
        Py_INCREF(cls[i]);
        Py_XSETREF(classes[i], (PyTypeObject *)cls[i]);
    }
    Py_RETURN_NONE;
}

static PyObject *
bind_records(PyObject *module, PyObject *args)
{
    PyObject *type;
    int version;
    if (!PyArg_ParseTuple(args, "O!i:bind_records", &PyType_Type, &type, &version))
        return NULL;
    if (version != MEMACTOR_RECORDS_VERSION ||
        ((PyTypeObject *)type)->tp_basicsize != (Py_ssize_t)sizeof(EventBatchObject)) {
        PyErr_Format(PyExc_ValueError,
                     "memactor's compiled ledger reads records of version %d, and %R has "
                     "version %d", MEMACTOR_RECORDS_VERSION, type, version);
        return NULL;
    }
    Py_INCREF(type);
    Py_XSETREF(batch_type, (PyTypeObject *)type);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"bind_records", bind_records, METH_VARARGS,
     "bind_records(Batch, version)\n\nName the compiled emits' Batch type, whose records "
     "apply then reads in place (the layout of _records.h, checked by its version)."},
    {"apply", (PyCFunction)(void (*)(void))apply, METH_FASTCALL,
     "apply(ledger, events) -> int\n\nLedger.apply, compiled: the same semantics as "
     "Ledger._apply_python, on the ledger's own objects. *events* is a list, a tuple or a "
     "Batch of records (see bind_records)."},
    {"bind", bind, METH_VARARGS,
     "bind(Account, DeviceAccount, OwnerAccount, kinds, layout)\n\nName the classes whose "
     "slots apply reads, the kinds' values and the record layout (checked)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "memactor._native._ledger",
    "The ledger's apply loop, compiled (see memactor.metrics._ledger).", -1, methods,
};

PyMODINIT_FUNC
PyInit__ledger(void)
{
#define INTERN(name)                                          \
    if ((s_##name = PyUnicode_InternFromString(#name)) == NULL) \
        return NULL;
    NAMES(INTERN)
#undef INTERN
    malformed_errors = PyTuple_Pack(5, PyExc_TypeError, PyExc_ValueError, PyExc_AttributeError,
                                    PyExc_KeyError, PyExc_OverflowError);
    if (malformed_errors == NULL || (zero = PyLong_FromLong(0)) == NULL)
        return NULL;
    if (PyType_Ready(&BlocksType) < 0)
        return NULL;
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL)
        return NULL;
    Py_INCREF(&BlocksType);
    if (PyModule_AddObject(module, "Blocks", (PyObject *)&BlocksType) < 0) {
        Py_DECREF(&BlocksType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}

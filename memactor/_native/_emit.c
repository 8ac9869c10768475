/* memactor._native._emit: the memory reporter's emits, compiled, and the batches of
 * compact event records they write.
 *
 * EmitCore is the base of memactor.runtime.MemoryReporter when this module loads. It
 * holds the fields an emit reads (the batch, the batch's limit, the clock, the event
 * numbering, the component, the default owner and device) and implements the six emits
 * (alloc, free, acquire, release, resize, transfer). Each makes exactly the event that
 * the pure-Python reference (memactor/runtime/_emits.py, PyEmits) builds, reading the
 * same fields and calling the same callables in the same order: the batch, the
 * component, the device's truth, the owner, the clock, str(requested), the numbering.
 * Then it appends the event and, once len(batch) >= _limit, calls self._full(), which
 * stays in Python with the rest of the reporter (handing on, drops, close).
 *
 * Where the batch is a Batch (the reporter's own, in compiled mode), the event is written
 * as an EventRecord (memactor/_native/_records.h): C integers and five references, no
 * tuple; a Batch reads back as the sequence of exactly the tuples the reference builds.
 * Into any other batch (a list) the emit appends the tuple.
 *
 * Three callables get a fast path that gives the same values: time.monotonic_ns (read
 * with clock_gettime(CLOCK_MONOTONIC), as CPython does on Linux), this module's Counter
 * (the hub's numbering) and the __next__ of an itertools.count (its tp_iternext, called
 * directly). Anything else is called through vectorcall. Which path a callable takes is
 * found by the first emit that meets it in the attribute, and kept until the attribute
 * changes: one pointer comparison an emit.
 *
 * merge(runs) puts a round's runs of events in order of their numbers (see
 * memactor.metrics.EventOrder) without making a tuple.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "_records.h"

#if defined(__GNUC__)
#define ALWAYS_INLINE __attribute__((always_inline))
#else
#define ALWAYS_INLINE
#endif

enum { KIND_ALLOC = 0, KIND_FREE, KIND_RESIZE, KIND_ACQUIRE, KIND_RELEASE, KIND_TRANSFER };
enum { CALL_ANY = 0, CALL_MONOTONIC_NS, CALL_ITERNEXT, CALL_COUNTER };

/* Module-wide constants, made once at import and kept for the process's life. */
static PyObject *kind_ints[6];
static PyObject *empty_string;
static PyObject *empty_tuple;
static PyObject *requested_tag;
static PyObject *full_name;
static PyObject *append_name;
static PyObject *monotonic_ns;  /* the time.monotonic_ns builtin */
static PyTypeObject *wrapper_type;  /* type(itertools.count().__next__) */
static PyTypeObject *count_type;  /* itertools.count */
/* This module's types, made by the last import (an older import's Batch still works
 * everywhere, as any other sequence does). */
static PyTypeObject *batch_type;
static PyTypeObject *counter_type;

/* -- records ---------------------------------------------------------------------------- */

/* A value that is a C integer (object NULL) or a new reference (object). */
typedef struct {
    PyObject *object;
    int64_t value;
} Field;

/* Whether *value* is an exact int within int64, read into *out*: at once where it fits
 * one digit (every block, size and number most programs have), else through the API. */
static inline ALWAYS_INLINE int
int64_of(PyObject *value, int64_t *out)
{
    if (!PyLong_CheckExact(value)) {
        return 0;
    }
#if PY_VERSION_HEX >= 0x030C0000
    if (PyUnstable_Long_IsCompact((PyLongObject *)value)) {
        *out = (int64_t)PyUnstable_Long_CompactValue((PyLongObject *)value);
        return 1;
    }
#else
    Py_ssize_t digits = Py_SIZE(value);
    if (digits >= -1 && digits <= 1) {
        *out = (int64_t)digits * (int64_t)((PyLongObject *)value)->ob_digit[0];
        return 1;
    }
#endif
    int overflow;
    long long number = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (overflow) {
        return 0;
    }
    *out = (int64_t)number;
    return 1;
}

static inline ALWAYS_INLINE int
field_int64(Field field, int64_t *out)
{
    if (field.object == NULL) {
        *out = field.value;
        return 1;
    }
    return int64_of(field.object, out);
}

static inline PyObject *
field_object(Field field)
{
    return field.object != NULL ? Py_NewRef(field.object) : PyLong_FromLongLong(field.value);
}

static inline int
is_text(PyObject *value)
{
    return PyUnicode_CheckExact(value);
}

static inline void
record_release(EventRecord *record)
{
    Py_DECREF(record->component);
    Py_DECREF(record->device);
    Py_DECREF(record->owner);
    Py_DECREF(record->tags);
    Py_DECREF(record->dst);
    Py_XDECREF(record->boxed);
}

static inline void
record_copy(EventRecord *to, const EventRecord *from)
{
    *to = *from;
    Py_INCREF(to->component);
    Py_INCREF(to->device);
    Py_INCREF(to->owner);
    Py_INCREF(to->tags);
    Py_INCREF(to->dst);
    Py_XINCREF(to->boxed);
}

/* The event tuple of these fields, as the reference builds it (a new reference). */
static PyObject *
event_tuple(PyObject *kind, PyObject *component, PyObject *block, PyObject *size,
            PyObject *device, PyObject *owner, Field ts, PyObject *old_size, PyObject *dst,
            PyObject *tags, Field seq)
{
    PyObject *event = PyTuple_New(11);
    if (event == NULL) {
        return NULL;
    }
    PyObject *items[11] = {kind, component, block, size, device, owner,
                           NULL, old_size, dst, tags, NULL};
    for (int i = 0; i < 11; i++) {
        if (items[i] != NULL) {
            PyTuple_SET_ITEM(event, i, Py_NewRef(items[i]));
        }
    }
    PyObject *now = field_object(ts), *number = field_object(seq);
    if (now == NULL || number == NULL) {
        Py_XDECREF(now);
        Py_XDECREF(number);
        Py_DECREF(event);
        return NULL;
    }
    PyTuple_SET_ITEM(event, 6, now);
    PyTuple_SET_ITEM(event, 10, number);
    return event;
}

/* The C fields of an event that fits a record. */
typedef struct {
    int64_t block, size, ts, old_size, seq;
    int32_t kind;
} Numbers;

/* Whether the event fits a record's C fields (read into *numbers*): kind one of the six,
 * block, size, time, old size and number exact ints within int64, the three names exact
 * strs, tags an exact tuple and dst None or an exact str. Calls nothing. */
static inline ALWAYS_INLINE int
event_fits(Numbers *numbers, PyObject *kind, PyObject *component, PyObject *block,
           PyObject *size, PyObject *device, PyObject *owner, Field ts, PyObject *old_size,
           PyObject *dst, PyObject *tags, Field seq)
{
    int64_t kind_value;
    if (int64_of(kind, &kind_value) && kind_value >= KIND_ALLOC &&
        kind_value <= KIND_TRANSFER && int64_of(block, &numbers->block) &&
        int64_of(size, &numbers->size) && field_int64(ts, &numbers->ts) &&
        int64_of(old_size, &numbers->old_size) && field_int64(seq, &numbers->seq) &&
        is_text(component) && is_text(device) && is_text(owner) && PyTuple_CheckExact(tags) &&
        (dst == Py_None || is_text(dst))) {
        numbers->kind = (int32_t)kind_value;
        return 1;
    }
    return 0;
}

/* Fills *record* with new references to the five names and *boxed* (taken: the caller's
 * reference) where it is not NULL, else with *numbers*. Allocates nothing, so nothing
 * (no collection, no finalizer) can run while the caller holds a pointer into a batch:
 * whatever may allocate is done before. */
static inline ALWAYS_INLINE void
record_set(EventRecord *record, const Numbers *numbers, PyObject *component,
           PyObject *device, PyObject *owner, PyObject *tags, PyObject *dst, PyObject *boxed)
{
    if (boxed == NULL) {
        record->block = numbers->block;
        record->size = numbers->size;
        record->ts = numbers->ts;
        record->old_size = numbers->old_size;
        record->seq = numbers->seq;
        record->kind = numbers->kind;
    }
    else {
        record->block = record->size = record->ts = record->old_size = record->seq = 0;
        record->kind = 0;
    }
    record->reserved_ = 0;
    record->boxed = boxed;
    record->component = Py_NewRef(component);
    record->device = Py_NewRef(device);
    record->owner = Py_NewRef(owner);
    record->tags = Py_NewRef(tags);
    record->dst = Py_NewRef(dst);
}

/* The event tuple *record* stands for (a new reference). The record's references are
 * taken before anything is allocated: a collection that runs a finalizer which changes
 * the batch cannot pull them away. */
static PyObject *
record_event(const EventRecord *record)
{
    if (record->boxed != NULL) {
        return Py_NewRef(record->boxed);
    }
    EventRecord held = *record;
    Py_INCREF(held.component);
    Py_INCREF(held.device);
    Py_INCREF(held.owner);
    Py_INCREF(held.dst);
    Py_INCREF(held.tags);
    PyObject *event = PyTuple_New(11);
    PyObject *block = PyLong_FromLongLong(held.block);
    PyObject *size = PyLong_FromLongLong(held.size);
    PyObject *ts = PyLong_FromLongLong(held.ts);
    PyObject *old_size = PyLong_FromLongLong(held.old_size);
    PyObject *seq = PyLong_FromLongLong(held.seq);
    if (event == NULL || block == NULL || size == NULL || ts == NULL || old_size == NULL ||
        seq == NULL) {
        Py_XDECREF(block);
        Py_XDECREF(size);
        Py_XDECREF(ts);
        Py_XDECREF(old_size);
        Py_XDECREF(seq);
        Py_XDECREF(event);
        held.boxed = NULL;
        record_release(&held);
        return NULL;
    }
    PyTuple_SET_ITEM(event, 0, Py_NewRef(kind_ints[held.kind]));
    PyTuple_SET_ITEM(event, 1, held.component);
    PyTuple_SET_ITEM(event, 2, block);
    PyTuple_SET_ITEM(event, 3, size);
    PyTuple_SET_ITEM(event, 4, held.device);
    PyTuple_SET_ITEM(event, 5, held.owner);
    PyTuple_SET_ITEM(event, 6, ts);
    PyTuple_SET_ITEM(event, 7, old_size);
    PyTuple_SET_ITEM(event, 8, held.dst);
    PyTuple_SET_ITEM(event, 9, held.tags);
    PyTuple_SET_ITEM(event, 10, seq);
    return event;
}

/* The number of *record*'s event: 1 with *out* set, 0 where it is not an int within
 * int64 (or the record is no 11-tuple). */
static int
record_seq(const EventRecord *record, int64_t *out)
{
    if (record->boxed == NULL) {
        *out = record->seq;
        return 1;
    }
    PyObject *boxed = record->boxed;
    if (!PyTuple_Check(boxed) || PyTuple_GET_SIZE(boxed) != 11) {
        return 0;
    }
    return int64_of(PyTuple_GET_ITEM(boxed, 10), out);
}

/* -- Batch ------------------------------------------------------------------------------ */

/* A Batch is tracked by the garbage collector only once a record refers to an object
 * that could lead back to it: one of a GC type, other than a tuple the collector has
 * stopped tracking (which it never tracks again). A batch of plain events (strings,
 * ints, None, untracked tags) costs collections nothing, as a list of such tuples does
 * once they are untracked. */
static inline ALWAYS_INLINE int
may_cycle(PyObject *value)
{
    if (PyUnicode_CheckExact(value) || value == Py_None || value == empty_tuple) {
        return 0;
    }
    return PyObject_IS_GC(value) &&
           !(PyTuple_CheckExact(value) && !PyObject_GC_IsTracked(value));
}

static inline ALWAYS_INLINE void
track_for(EventBatchObject *batch, const EventRecord *record)
{
    if (((record->boxed != NULL && may_cycle(record->boxed)) || may_cycle(record->component) ||
         may_cycle(record->device) || may_cycle(record->owner) || may_cycle(record->tags) ||
         may_cycle(record->dst)) &&
        !PyObject_GC_IsTracked((PyObject *)batch)) {
        PyObject_GC_Track((PyObject *)batch);
    }
}

static inline void
track_like(EventBatchObject *batch, PyObject *source)
{
    if (PyObject_GC_IsTracked(source) && !PyObject_GC_IsTracked((PyObject *)batch)) {
        PyObject_GC_Track((PyObject *)batch);
    }
}

static inline int
batch_check(PyObject *value)
{
    return batch_type != NULL && Py_IS_TYPE(value, batch_type);
}

/* Room for *more* records; -1 with MemoryError. */
static int
batch_reserve(EventBatchObject *batch, Py_ssize_t more)
{
    Py_ssize_t needed = batch->length + more;
    if (needed <= batch->capacity) {
        return 0;
    }
    /* Fourfold while small, so that a reporter's batch (256 events by default) moves
     * twice on its way there; twofold beyond. */
    Py_ssize_t capacity = batch->capacity < 16 ? 16 : batch->capacity;
    while (capacity < needed) {
        if (capacity > PY_SSIZE_T_MAX / 4 / (Py_ssize_t)sizeof(EventRecord)) {
            PyErr_NoMemory();
            return -1;
        }
        capacity *= capacity < 1024 ? 4 : 2;
    }
    EventRecord *records = PyMem_Realloc(batch->records, capacity * sizeof(EventRecord));
    if (records == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    batch->records = records;
    batch->capacity = capacity;
    return 0;
}

static EventBatchObject *
batch_make(PyTypeObject *type, Py_ssize_t capacity)
{
    EventBatchObject *batch = (EventBatchObject *)type->tp_alloc(type, 0);
    if (batch == NULL) {
        return NULL;
    }
    PyObject_GC_UnTrack(batch);
    batch->length = batch->capacity = 0;
    batch->records = NULL;
    batch->version = MEMACTOR_RECORDS_VERSION;
    if (capacity > 0 && batch_reserve(batch, capacity) < 0) {
        Py_DECREF(batch);
        return NULL;
    }
    return batch;
}

/* Drops every record; the array is detached first, so that code run by a release (a
 * __del__) finds the batch empty and consistent. */
static void
batch_drop_records(EventBatchObject *batch)
{
    EventRecord *records = batch->records;
    Py_ssize_t length = batch->length;
    batch->records = NULL;
    batch->length = batch->capacity = 0;
    for (Py_ssize_t i = 0; i < length; i++) {
        record_release(&records[i]);
    }
    PyMem_Free(records);
}

/* Appends the event to *batch*: as C fields where it fits them, else boxed (*event*, the
 * tuple as the reference builds it, if given; else one made here first). -1 on error. */
static inline ALWAYS_INLINE int
batch_push(EventBatchObject *batch, PyObject *event, PyObject *kind, PyObject *component,
           PyObject *block, PyObject *size, PyObject *device, PyObject *owner, Field ts,
           PyObject *old_size, PyObject *dst, PyObject *tags, Field seq)
{
    Numbers numbers;
    PyObject *boxed = NULL;
    if (!event_fits(&numbers, kind, component, block, size, device, owner, ts, old_size, dst,
                    tags, seq)) {
        boxed = event != NULL ? Py_NewRef(event)
                              : event_tuple(kind, component, block, size, device, owner, ts,
                                            old_size, dst, tags, seq);
        if (boxed == NULL) {
            return -1;
        }
    }
    if (batch_reserve(batch, 1) < 0) {
        Py_XDECREF(boxed);
        return -1;
    }
    EventRecord *record = &batch->records[batch->length];
    record_set(record, &numbers, component, device, owner, tags, dst, boxed);
    batch->length++;
    track_for(batch, record);
    return 0;
}

/* Appends *event*, any object: an 11-tuple as batch_push does, anything else boxed as
 * it is (the ledger counts it as malformed). */
static int
batch_append_event(EventBatchObject *batch, PyObject *event)
{
    if (PyTuple_CheckExact(event) && PyTuple_GET_SIZE(event) == 11) {
        PyObject **item = &PyTuple_GET_ITEM(event, 0);
        Field ts = {item[6], 0}, seq = {item[10], 0};
        return batch_push(batch, event, item[0], item[1], item[2], item[3], item[4], item[5],
                          ts, item[7], item[8], item[9], seq);
    }
    if (batch_reserve(batch, 1) < 0) {
        return -1;
    }
    EventRecord *record = &batch->records[batch->length];
    record_set(record, NULL, empty_string, empty_string, empty_string, empty_tuple, Py_None,
               Py_NewRef(event));
    batch->length++;
    track_for(batch, record);
    return 0;
}

/* Appends copies of *source*'s records [start, stop) taken every *step*. */
static int
batch_copy_from(EventBatchObject *batch, EventBatchObject *source, Py_ssize_t start,
                Py_ssize_t count, Py_ssize_t step)
{
    if (batch_reserve(batch, count) < 0) {
        return -1;
    }
    /* Reserved first: *source* may be *batch* itself, whose array may have moved. */
    EventRecord *to = batch->records + batch->length;
    for (Py_ssize_t i = 0; i < count; i++) {
        record_copy(&to[i], &source->records[start + i * step]);
    }
    batch->length += count;
    track_like(batch, (PyObject *)source);
    return 0;
}

static int
batch_extend_with(EventBatchObject *batch, PyObject *events)
{
    if (batch_check(events)) {
        EventBatchObject *source = (EventBatchObject *)events;
        return batch_copy_from(batch, source, 0, source->length, 1);
    }
    PyObject *iterator = PyObject_GetIter(events);
    if (iterator == NULL) {
        return -1;
    }
    PyObject *event;
    while ((event = PyIter_Next(iterator)) != NULL) {
        int appended = batch_append_event(batch, event);
        Py_DECREF(event);
        if (appended < 0) {
            Py_DECREF(iterator);
            return -1;
        }
    }
    Py_DECREF(iterator);
    return PyErr_Occurred() ? -1 : 0;
}

static PyObject *
batch_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *events = NULL;
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0) {
        PyErr_SetString(PyExc_TypeError, "Batch() takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_UnpackTuple(args, "Batch", 0, 1, &events)) {
        return NULL;
    }
    EventBatchObject *batch = batch_make(type, 0);
    if (batch == NULL) {
        return NULL;
    }
    if (events != NULL && batch_extend_with(batch, events) < 0) {
        Py_DECREF(batch);
        return NULL;
    }
    return (PyObject *)batch;
}

static int
batch_traverse(EventBatchObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    for (Py_ssize_t i = 0; i < self->length; i++) {
        EventRecord *record = &self->records[i];
        Py_VISIT(record->component);
        Py_VISIT(record->device);
        Py_VISIT(record->owner);
        Py_VISIT(record->tags);
        Py_VISIT(record->dst);
        Py_VISIT(record->boxed);
    }
    return 0;
}

static int
batch_tp_clear(EventBatchObject *self)
{
    batch_drop_records(self);
    return 0;
}

static void
batch_dealloc(EventBatchObject *self)
{
    PyTypeObject *type = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    Py_TRASHCAN_BEGIN(self, batch_dealloc);
    batch_drop_records(self);
    type->tp_free((PyObject *)self);
    Py_DECREF(type);
    Py_TRASHCAN_END;
}

static Py_ssize_t
batch_length(EventBatchObject *self)
{
    return self->length;
}

static PyObject *
batch_item(EventBatchObject *self, Py_ssize_t index)
{
    if (index < 0 || index >= self->length) {
        PyErr_SetString(PyExc_IndexError, "Batch index out of range");
        return NULL;
    }
    return record_event(&self->records[index]);
}

static PyObject *
batch_subscript(EventBatchObject *self, PyObject *key)
{
    if (PyIndex_Check(key)) {
        Py_ssize_t index = PyNumber_AsSsize_t(key, PyExc_IndexError);
        if (index == -1 && PyErr_Occurred()) {
            return NULL;
        }
        if (index < 0) {
            index += self->length;
        }
        return batch_item(self, index);
    }
    if (PySlice_Check(key)) {
        Py_ssize_t start, stop, step;
        if (PySlice_Unpack(key, &start, &stop, &step) < 0) {
            return NULL;
        }
        /* Made first: what runs while it is allocated may change this batch. */
        EventBatchObject *slice = batch_make(Py_TYPE(self), 0);
        if (slice == NULL) {
            return NULL;
        }
        Py_ssize_t count = PySlice_AdjustIndices(self->length, &start, &stop, step);
        if (batch_copy_from(slice, self, start, count, step) < 0) {
            Py_DECREF(slice);
            return NULL;
        }
        return (PyObject *)slice;
    }
    PyErr_Format(PyExc_TypeError, "Batch indices must be integers or slices, not %.200s",
                 Py_TYPE(key)->tp_name);
    return NULL;
}

static PyObject *
batch_concat(PyObject *left, PyObject *right)
{
    if (!batch_check(left) || !batch_check(right)) {
        PyErr_Format(PyExc_TypeError, "can only concatenate Batch (not \"%.200s\") to Batch",
                     Py_TYPE(batch_check(left) ? right : left)->tp_name);
        return NULL;
    }
    EventBatchObject *a = (EventBatchObject *)left, *b = (EventBatchObject *)right;
    EventBatchObject *joined = batch_make(Py_TYPE(a), 0);
    if (joined == NULL) {
        return NULL;
    }
    if (batch_reserve(joined, a->length + b->length) < 0 ||
        batch_copy_from(joined, a, 0, a->length, 1) < 0 ||
        batch_copy_from(joined, b, 0, b->length, 1) < 0) {
        Py_DECREF(joined);
        return NULL;
    }
    return (PyObject *)joined;
}

/* Whether *self* holds the events of *other*, any sequence: 1, 0, or -1 on error. */
static int
batch_equal(EventBatchObject *self, PyObject *other)
{
    Py_ssize_t length = PySequence_Size(other);
    if (length < 0) {
        return -1;
    }
    if (length != self->length) {
        return 0;
    }
    for (Py_ssize_t i = 0; i < length; i++) {
        if (i >= self->length) {
            return 0; /* an element's __eq__ cleared us */
        }
        PyObject *mine = record_event(&self->records[i]);
        if (mine == NULL) {
            return -1;
        }
        PyObject *theirs = PySequence_GetItem(other, i);
        if (theirs == NULL) {
            Py_DECREF(mine);
            return -1;
        }
        int equal = PyObject_RichCompareBool(mine, theirs, Py_EQ);
        Py_DECREF(mine);
        Py_DECREF(theirs);
        if (equal <= 0) {
            return equal;
        }
    }
    return 1;
}

static PyObject *
batch_richcompare(EventBatchObject *self, PyObject *other, int op)
{
    if ((op != Py_EQ && op != Py_NE) || !PySequence_Check(other) ||
        PyUnicode_Check(other) || PyBytes_Check(other) || PyByteArray_Check(other)) {
        Py_RETURN_NOTIMPLEMENTED;
    }
    int equal = batch_equal(self, other);
    if (equal < 0) {
        return NULL;
    }
    return PyBool_FromLong(op == Py_EQ ? equal : !equal);
}

static PyObject *
batch_repr(EventBatchObject *self)
{
    PyObject *events = PySequence_List((PyObject *)self);
    if (events == NULL) {
        return NULL;
    }
    PyObject *text = PyUnicode_FromFormat("Batch(%R)", events);
    Py_DECREF(events);
    return text;
}

static PyObject *
batch_append(EventBatchObject *self, PyObject *event)
{
    if (batch_append_event(self, event) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
batch_extend(EventBatchObject *self, PyObject *events)
{
    if (batch_extend_with(self, events) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
batch_pop(EventBatchObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t index = -1;
    if (nargs > 1) {
        PyErr_Format(PyExc_TypeError, "pop expected at most 1 argument, got %zd", nargs);
        return NULL;
    }
    if (nargs == 1) {
        index = PyNumber_AsSsize_t(args[0], PyExc_IndexError);
        if (index == -1 && PyErr_Occurred()) {
            return NULL;
        }
    }
    if (self->length == 0) {
        PyErr_SetString(PyExc_IndexError, "pop from empty Batch");
        return NULL;
    }
    if (index < 0) {
        index += self->length;
    }
    if (index < 0 || index >= self->length) {
        PyErr_SetString(PyExc_IndexError, "pop index out of range");
        return NULL;
    }
    /* Taken out first: making its tuple may run code that changes the batch. */
    EventRecord taken = self->records[index];
    memmove(&self->records[index], &self->records[index + 1],
            (self->length - index - 1) * sizeof(EventRecord));
    self->length--;
    PyObject *event = record_event(&taken);
    record_release(&taken);
    return event;
}

static PyObject *
batch_clear_method(EventBatchObject *self, PyObject *Py_UNUSED(ignored))
{
    batch_drop_records(self);
    Py_RETURN_NONE;
}

static PyObject *
batch_reduce(EventBatchObject *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *events = PySequence_List((PyObject *)self);
    if (events == NULL) {
        return NULL;
    }
    return Py_BuildValue("O(N)", (PyObject *)Py_TYPE(self), events);
}

static PyMethodDef batch_methods[] = {
    {"append", (PyCFunction)batch_append, METH_O,
     "append($self, event, /)\n--\n\n"
     "Append *event*, an event tuple (any other object is kept as it is)."},
    {"extend", (PyCFunction)batch_extend, METH_O,
     "extend($self, events, /)\n--\n\n"
     "Append every event of *events* (a Batch's records are copied as they are)."},
    {"pop", (PyCFunction)(void (*)(void))batch_pop, METH_FASTCALL,
     "pop($self, index=-1, /)\n--\n\n"
     "Remove the event at *index* (the last by default) and return it."},
    {"clear", (PyCFunction)batch_clear_method, METH_NOARGS,
     "clear($self, /)\n--\n\nRemove every event."},
    {"__reduce__", (PyCFunction)batch_reduce, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot batch_slots[] = {
    {Py_tp_doc,
     "Batch(events=(), /)\n--\n\n"
     "Events in emission order, kept as compact records (memactor/_native/_records.h):\n"
     "a sequence of the event tuples the pure-Python emits build."},
    {Py_tp_new, batch_new},
    {Py_tp_dealloc, batch_dealloc},
    {Py_tp_traverse, batch_traverse},
    {Py_tp_clear, batch_tp_clear},
    {Py_tp_repr, batch_repr},
    {Py_tp_hash, PyObject_HashNotImplemented},
    {Py_tp_richcompare, batch_richcompare},
    {Py_tp_methods, batch_methods},
    {Py_sq_length, batch_length},
    {Py_sq_item, batch_item},
    {Py_sq_concat, batch_concat},
    {Py_mp_length, batch_length},
    {Py_mp_subscript, batch_subscript},
    {0, NULL},
};

static PyType_Spec batch_spec = {
    .name = "memactor._native._emit.Batch",
    .basicsize = sizeof(EventBatchObject),
    .itemsize = 0,
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_SEQUENCE,
    .slots = batch_slots,
};

/* -- Counter ---------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    int64_t next;
} CounterObject;

static inline int
counter_step(CounterObject *counter, int64_t *out)
{
    if (counter->next == INT64_MAX) {
        PyErr_SetString(PyExc_OverflowError, "the Counter reached 2**63 - 1");
        return -1;
    }
    *out = counter->next++;
    return 0;
}

static PyObject *
counter_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"start", NULL};
    long long start = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|L:Counter", keywords, &start)) {
        return NULL;
    }
    CounterObject *counter = (CounterObject *)type->tp_alloc(type, 0);
    if (counter == NULL) {
        return NULL;
    }
    counter->next = start;
    return (PyObject *)counter;
}

static PyObject *
counter_call(CounterObject *self, PyObject *args, PyObject *kwargs)
{
    if (PyTuple_GET_SIZE(args) != 0 || (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0)) {
        PyErr_SetString(PyExc_TypeError, "Counter() takes no arguments when called");
        return NULL;
    }
    int64_t value;
    if (counter_step(self, &value) < 0) {
        return NULL;
    }
    return PyLong_FromLongLong(value);
}

static PyObject *
counter_next(CounterObject *self)
{
    int64_t value;
    if (counter_step(self, &value) < 0) {
        return NULL;
    }
    return PyLong_FromLongLong(value);
}

static PyObject *
counter_repr(CounterObject *self)
{
    return PyUnicode_FromFormat("Counter(%lld)", (long long)self->next);
}

static void
counter_dealloc(CounterObject *self)
{
    PyTypeObject *type = Py_TYPE(self);
    type->tp_free((PyObject *)self);
    Py_DECREF(type);
}

static PyType_Slot counter_slots[] = {
    {Py_tp_doc,
     "Counter(start=1)\n--\n\n"
     "Calling it returns start, start + 1, ... (as itertools.count(start).__next__ does,\n"
     "up to 2**63 - 2); the compiled emits read it without making an int."},
    {Py_tp_new, counter_new},
    {Py_tp_dealloc, counter_dealloc},
    {Py_tp_call, counter_call},
    {Py_tp_iter, PyObject_SelfIter},
    {Py_tp_iternext, counter_next},
    {Py_tp_repr, counter_repr},
    {0, NULL},
};

static PyType_Spec counter_spec = {
    .name = "memactor._native._emit.Counter",
    .basicsize = sizeof(CounterObject),
    .itemsize = 0,
    .flags = Py_TPFLAGS_DEFAULT,
    .slots = counter_slots,
};

/* -- calling the clock and the numbering ---------------------------------------------- */

/* How an emit calls the clock or the numbering: found for the callable *seen* the first
 * time an emit finds it in the attribute, and kept (with a reference to it) until the
 * attribute holds another. */
typedef struct {
    PyObject *seen;
    PyObject *iterator;  /* whose tp_iternext stands for the callable (CALL_ITERNEXT) */
    int call;
} Stamp;

/* The attributes are plain object members, not properties: Python code that reads them
 * (the sited reporters' emits, _full) gets the interpreter's fast path for slots. */
typedef struct {
    PyObject_HEAD
    PyObject *batch;
    PyObject *limit;
    PyObject *component;
    PyObject *owner;
    PyObject *device;
    PyObject *clock;
    PyObject *seq;
    Stamp clock_stamp;
    Stamp seq_stamp;
} EmitCore;

/* Where CPython's time.monotonic_ns is clock_gettime(CLOCK_MONOTONIC) (Linux), read it
 * the same way; elsewhere (macOS uses mach_absolute_time, Windows its own counter) the
 * builtin is called like any other clock. */
#if defined(__linux__) && defined(CLOCK_MONOTONIC)
#define MONOTONIC_FAST_PATH 1
#else
#define MONOTONIC_FAST_PATH 0
#endif

/* Calls the stamp's callable: *out* gets a C integer where the value is an exact int
 * within int64 (read without making one where the callable is a fast path's), else a
 * new reference. Inlined: an emit calls it twice, and a call costs as much as its fast
 * paths. */
static inline ALWAYS_INLINE int
call_stamp(Stamp *stamp, Field *out)
{
    out->object = NULL;
#if MONOTONIC_FAST_PATH
    if (stamp->call == CALL_MONOTONIC_NS) {
        struct timespec now;
        if (clock_gettime(CLOCK_MONOTONIC, &now) != 0) {
            PyErr_SetFromErrno(PyExc_OSError);
            return -1;
        }
        out->value = (int64_t)now.tv_sec * 1000000000LL + now.tv_nsec;
        return 0;
    }
#endif
    if (stamp->call == CALL_COUNTER) {
        return counter_step((CounterObject *)stamp->seen, &out->value);
    }
    PyObject *value;
    if (stamp->call == CALL_ITERNEXT) {
        value = Py_TYPE(stamp->iterator)->tp_iternext(stamp->iterator);
        if (value == NULL && !PyErr_Occurred()) {
            PyErr_SetNone(PyExc_StopIteration);
        }
    }
    else {
        value = PyObject_CallNoArgs(stamp->seen);
    }
    if (value == NULL) {
        return -1;
    }
    if (int64_of(value, &out->value)) {
        Py_DECREF(value);
    }
    else {
        out->object = value;
    }
    return 0;
}

/* How *callable* will be called: CALL_MONOTONIC_NS, CALL_COUNTER, CALL_ITERNEXT (with
 * *iterator* set to a new reference to the count), or CALL_ANY; -1 with an exception on
 * error. */
static int
classify(PyObject *callable, PyObject **iterator)
{
    *iterator = NULL;
    if (MONOTONIC_FAST_PATH && callable == monotonic_ns) {
        return CALL_MONOTONIC_NS;
    }
    if (counter_type != NULL && Py_IS_TYPE(callable, counter_type)) {
        return CALL_COUNTER;
    }
    if (Py_IS_TYPE(callable, wrapper_type)) {
        PyObject *self = PyObject_GetAttrString(callable, "__self__");
        if (self == NULL) {
            return -1;
        }
        if (Py_IS_TYPE(self, count_type)) {
            PyObject *name = PyObject_GetAttrString(callable, "__name__");
            if (name == NULL) {
                Py_DECREF(self);
                return -1;
            }
            int is_next = PyUnicode_Check(name) &&
                          PyUnicode_CompareWithASCIIString(name, "__next__") == 0;
            Py_DECREF(name);
            if (is_next) {
                *iterator = self;
                return CALL_ITERNEXT;
            }
        }
        Py_DECREF(self);
    }
    return CALL_ANY;
}

/* Calls *callable* (the attribute's value, not NULL) as *stamp* says, finding how
 * first if the attribute changed since the last emit. */
static inline ALWAYS_INLINE int
stamp_of(Stamp *stamp, PyObject *callable, Field *out)
{
    if (callable != stamp->seen) {
        PyObject *iterator;
        int call = classify(callable, &iterator);
        if (call < 0) {
            return -1;
        }
        PyObject *old_seen = stamp->seen, *old_iterator = stamp->iterator;
        stamp->seen = Py_NewRef(callable);
        stamp->iterator = iterator;
        stamp->call = call;
        Py_XDECREF(old_seen);
        Py_XDECREF(old_iterator);
    }
    return call_stamp(stamp, out);
}

/* -- arguments ------------------------------------------------------------------------ */

/* Fills values[0..count) from a vectorcall's arguments (borrowed references; NULL for
 * one not given), as a Python function of these parameter names would: the first
 * *required* are required, the rest default to NULL. */
static int
parse_arguments(PyObject *self, const char *method, PyObject *const *args, Py_ssize_t nargs,
                PyObject *kwnames, PyObject **names, int count, int required,
                PyObject **values)
{
    const char *type_name = Py_TYPE(self)->tp_name;
    if (nargs > count) {
        PyErr_Format(PyExc_TypeError,
                     "%s.%s() takes from %d to %d positional arguments but %zd were given",
                     type_name, method, required + 1, count + 1, nargs + 1);
        return -1;
    }
    for (int i = 0; i < count; i++) {
        values[i] = i < nargs ? args[i] : NULL;
    }
    if (kwnames != NULL) {
        Py_ssize_t given = PyTuple_GET_SIZE(kwnames);
        for (Py_ssize_t k = 0; k < given; k++) {
            PyObject *key = PyTuple_GET_ITEM(kwnames, k);
            int found = -1;
            for (int i = 0; i < count; i++) {
                if (key == names[i]) {
                    found = i;
                    break;
                }
            }
            if (found < 0) {
                for (int i = 0; i < count; i++) {
                    int equal = PyUnicode_Compare(key, names[i]);
                    if (equal == -1 && PyErr_Occurred()) {
                        return -1;
                    }
                    if (equal == 0) {
                        found = i;
                        break;
                    }
                }
            }
            if (found < 0) {
                PyErr_Format(PyExc_TypeError,
                             "%s.%s() got an unexpected keyword argument '%S'", type_name,
                             method, key);
                return -1;
            }
            if (values[found] != NULL) {
                PyErr_Format(PyExc_TypeError, "%s.%s() got multiple values for argument '%S'",
                             type_name, method, key);
                return -1;
            }
            values[found] = args[nargs + k];
        }
    }
    for (int i = 0; i < required; i++) {
        if (values[i] == NULL) {
            PyErr_Format(PyExc_TypeError,
                         "%s.%s() missing required argument '%S' (pos %d)", type_name,
                         method, names[i], i + 1);
            return -1;
        }
    }
    return 0;
}

/* -- one emit ------------------------------------------------------------------------- */

static PyObject *
missing(const char *name)
{
    PyErr_SetString(PyExc_AttributeError, name);
    return NULL;
}

/* Appends the event to *batch*, any object but a Batch, as a tuple; -1 on error. */
static int
append_tuple(PyObject *batch, PyObject *kind, PyObject *component, PyObject *block,
             PyObject *size, PyObject *device, PyObject *owner, Field now,
             PyObject *old_size, PyObject *dst, PyObject *tags, Field number)
{
    PyObject *event = event_tuple(kind, component, block, size, device, owner, now, old_size,
                                  dst, tags, number);
    if (event == NULL) {
        return -1;
    }
    int appended;
    if (PyList_CheckExact(batch)) {
        appended = PyList_Append(batch, event);
    }
    else {
        PyObject *result = PyObject_CallMethodOneArg(batch, append_name, event);
        appended = result == NULL ? -1 : 0;
        Py_XDECREF(result);
    }
    Py_DECREF(event);
    return appended;
}

/* Makes the event and appends it: kind, component, block, size, device (or the
 * reporter's when *device* is not true; for a transfer, *device* as given), owner (the
 * reporter's when *owner* is NULL or None; "" for events that lend nothing), the clock,
 * old_size, dst, tags (*given_tags*, or made from *requested*), the number. Into a Batch
 * it goes as a record, into anything else as a tuple. Then calls _full() when the batch
 * reached _limit. */
static PyObject *
emit(EmitCore *self, PyObject *kind, PyObject *block, PyObject *size, PyObject *device,
     int device_as_given, PyObject *owner, int lends, PyObject *old_size, PyObject *dst,
     PyObject *requested, PyObject *given_tags)
{
    PyObject *batch = self->batch;
    if (batch == NULL) {
        return missing("_batch");
    }
    PyObject *component = self->component;
    if (component == NULL) {
        return missing("component");
    }
    /* Held across the calls into user code below, which may replace the attributes. */
    Py_INCREF(batch);
    Py_INCREF(component);
    Field now = {NULL, 0}, number = {NULL, 0};
    PyObject *tags = NULL;

    if (!device_as_given) {
        /* device or self.device */
        int truth;
        if (device == NULL || device == Py_None) {
            truth = 0;
        }
        else if (PyUnicode_CheckExact(device)) {
            truth = PyUnicode_GET_LENGTH(device) != 0;
        }
        else {
            truth = PyObject_IsTrue(device);
            if (truth < 0) {
                goto error;
            }
        }
        if (!truth) {
            device = self->device;
            if (device == NULL) {
                missing("device");
                goto error;
            }
        }
    }
    Py_INCREF(device);

    if (!lends) {
        owner = empty_string;
    }
    else if (owner == NULL || owner == Py_None) {
        owner = self->owner;
        if (owner == NULL) {
            missing("owner");
            goto error_device;
        }
    }
    Py_INCREF(owner);

    if (self->clock == NULL) {
        missing("_clock");
        goto error_owner;
    }
    if (stamp_of(&self->clock_stamp, self->clock, &now) < 0) {
        goto error_owner;
    }

    if (given_tags != NULL) {
        tags = Py_NewRef(given_tags);
    }
    else if (requested == NULL || requested == Py_None) {
        tags = Py_NewRef(empty_tuple);
    }
    else {
        PyObject *text = PyObject_Str(requested);
        if (text == NULL) {
            goto error_owner;
        }
        PyObject *tag = PyTuple_Pack(2, requested_tag, text);
        Py_DECREF(text);
        if (tag == NULL) {
            goto error_owner;
        }
        tags = PyTuple_Pack(1, tag);
        Py_DECREF(tag);
        if (tags == NULL) {
            goto error_owner;
        }
    }

    if (self->seq == NULL) {
        missing("_seq");
        goto error_owner;
    }
    if (stamp_of(&self->seq_stamp, self->seq, &number) < 0) {
        goto error_owner;
    }

    Py_ssize_t length;
    if (batch_check(batch)) {
        EventBatchObject *records = (EventBatchObject *)batch;
        if (batch_push(records, NULL, kind, component, block, size, device, owner, now,
                       old_size, dst, tags, number) < 0) {
            goto error_owner;
        }
        length = records->length;
    }
    else {
        if (append_tuple(batch, kind, component, block, size, device, owner, now, old_size,
                         dst, tags, number) < 0) {
            goto error_owner;
        }
        length = PyObject_Size(batch);
        if (length < 0) {
            goto error_owner;
        }
    }
    Py_XDECREF(now.object);
    Py_XDECREF(number.object);
    Py_DECREF(tags);
    Py_DECREF(owner);
    Py_DECREF(device);
    Py_DECREF(component);
    Py_DECREF(batch);

    int full;
    PyObject *limit = self->limit;
    int64_t bound;
    if (limit != NULL && int64_of(limit, &bound)) {
        full = (int64_t)length >= bound;
    }
    else if (limit != NULL && PyLong_CheckExact(limit)) {
        int overflow; /* beyond int64: full only when negative */
        (void)PyLong_AsLongLongAndOverflow(limit, &overflow);
        full = overflow < 0;
    }
    else if (limit == NULL) {
        return missing("_limit");
    }
    else {
        PyObject *count = PyLong_FromSsize_t(length);
        if (count == NULL) {
            return NULL;
        }
        full = PyObject_RichCompareBool(count, limit, Py_GE);
        Py_DECREF(count);
        if (full < 0) {
            return NULL;
        }
    }
    if (full) {
        PyObject *result = PyObject_CallMethodNoArgs((PyObject *)self, full_name);
        if (result == NULL) {
            return NULL;
        }
        Py_DECREF(result);
    }
    Py_RETURN_NONE;

error_owner:
    Py_XDECREF(now.object);
    Py_XDECREF(number.object);
    Py_XDECREF(tags);
    Py_DECREF(owner);
error_device:
    Py_DECREF(device);
error:
    Py_DECREF(component);
    Py_DECREF(batch);
    return NULL;
}

/* -- the six emits -------------------------------------------------------------------- */

static PyObject *name_block, *name_size, *name_owner, *name_device, *name_requested,
    *name_old_size, *name_src, *name_dst;

static PyObject *
core_alloc_like(EmitCore *self, int kind, const char *method, PyObject *const *args,
                Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *names[5] = {name_block, name_size, name_owner, name_device, name_requested};
    PyObject *values[5];
    if (nargs == 2 && kwnames == NULL) {
        values[0] = args[0];
        values[1] = args[1];
        values[2] = values[3] = values[4] = NULL;
    }
    else if (parse_arguments((PyObject *)self, method, args, nargs, kwnames, names, 5, 2,
                             values) < 0) {
        return NULL;
    }
    return emit(self, kind_ints[kind], values[0], values[1], values[3], 0, values[2], 1,
                kind_ints[KIND_ALLOC], Py_None, values[4], NULL);
}

static PyObject *
core_free_like(EmitCore *self, int kind, const char *method, PyObject *const *args,
               Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *names[3] = {name_block, name_size, name_device};
    PyObject *values[3];
    if (nargs == 2 && kwnames == NULL) {
        values[0] = args[0];
        values[1] = args[1];
        values[2] = NULL;
    }
    else if (parse_arguments((PyObject *)self, method, args, nargs, kwnames, names, 3, 2,
                             values) < 0) {
        return NULL;
    }
    return emit(self, kind_ints[kind], values[0], values[1], values[2], 0, NULL, 0,
                kind_ints[KIND_ALLOC], Py_None, NULL, NULL);
}

/* kind_ints[KIND_ALLOC] is the int 0: the old_size of every event but a resize. */

static PyObject *
core_alloc(EmitCore *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    return core_alloc_like(self, KIND_ALLOC, "alloc", args, nargs, kwnames);
}

static PyObject *
core_acquire(EmitCore *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    return core_alloc_like(self, KIND_ACQUIRE, "acquire", args, nargs, kwnames);
}

static PyObject *
core_free(EmitCore *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    return core_free_like(self, KIND_FREE, "free", args, nargs, kwnames);
}

static PyObject *
core_release(EmitCore *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    return core_free_like(self, KIND_RELEASE, "release", args, nargs, kwnames);
}

static PyObject *
core_resize(EmitCore *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *names[4] = {name_block, name_old_size, name_size, name_device};
    PyObject *values[4];
    if (nargs == 3 && kwnames == NULL) {
        values[0] = args[0];
        values[1] = args[1];
        values[2] = args[2];
        values[3] = NULL;
    }
    else if (parse_arguments((PyObject *)self, "resize", args, nargs, kwnames, names, 4, 3,
                             values) < 0) {
        return NULL;
    }
    return emit(self, kind_ints[KIND_RESIZE], values[0], values[2], values[3], 0, NULL, 0,
                values[1], Py_None, NULL, NULL);
}

static PyObject *
core_transfer(EmitCore *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *names[4] = {name_size, name_src, name_dst, name_block};
    PyObject *values[4];
    if (nargs == 3 && kwnames == NULL) {
        values[0] = args[0];
        values[1] = args[1];
        values[2] = args[2];
        values[3] = NULL;
    }
    else if (parse_arguments((PyObject *)self, "transfer", args, nargs, kwnames, names, 4, 3,
                             values) < 0) {
        return NULL;
    }
    PyObject *block = values[3] == NULL ? kind_ints[KIND_ALLOC] : values[3];
    return emit(self, kind_ints[KIND_TRANSFER], block, values[0], values[1], 1, NULL, 1,
                kind_ints[KIND_ALLOC], values[2], NULL, NULL);
}

/* _lend(kind, block, size, owner, device, tags): the sited reporters' lending emits, once
 * they have their tags (see PyEmits._lend). */
static PyObject *
core_lend(EmitCore *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6) {
        PyErr_Format(PyExc_TypeError, "%s._lend() takes 6 arguments (%zd given)",
                     Py_TYPE(self)->tp_name, nargs);
        return NULL;
    }
    return emit(self, args[0], args[1], args[2], args[4], 0, args[3], 1,
                kind_ints[KIND_ALLOC], Py_None, NULL, args[5]);
}

/* -- the type ------------------------------------------------------------------------- */

static int
core_traverse(EmitCore *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->batch);
    Py_VISIT(self->component);
    Py_VISIT(self->owner);
    Py_VISIT(self->device);
    Py_VISIT(self->limit);
    Py_VISIT(self->clock);
    Py_VISIT(self->seq);
    Py_VISIT(self->clock_stamp.seen);
    Py_VISIT(self->clock_stamp.iterator);
    Py_VISIT(self->seq_stamp.seen);
    Py_VISIT(self->seq_stamp.iterator);
    return 0;
}

static int
core_clear(EmitCore *self)
{
    Py_CLEAR(self->batch);
    Py_CLEAR(self->component);
    Py_CLEAR(self->owner);
    Py_CLEAR(self->device);
    Py_CLEAR(self->limit);
    Py_CLEAR(self->clock);
    Py_CLEAR(self->seq);
    Py_CLEAR(self->clock_stamp.seen);
    Py_CLEAR(self->clock_stamp.iterator);
    Py_CLEAR(self->seq_stamp.seen);
    Py_CLEAR(self->seq_stamp.iterator);
    return 0;
}

static void
core_dealloc(EmitCore *self)
{
    PyTypeObject *type = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    core_clear(self);
    type->tp_free((PyObject *)self);
    Py_DECREF(type);
}

#define EMIT_FLAGS (METH_FASTCALL | METH_KEYWORDS)

static PyMethodDef core_methods[] = {
    {"alloc", (PyCFunction)(void (*)(void))core_alloc, EMIT_FLAGS,
     "alloc($self, /, block, size, owner=None, device=None, requested=None)\n--\n\n"
     "``size`` bytes were taken from the system for ``block`` and lent to ``owner``;\n"
     "``requested``: the bytes asked for, if fewer (see :meth:`Reporter.alloc`)."},
    {"free", (PyCFunction)(void (*)(void))core_free, EMIT_FLAGS,
     "free($self, /, block, size, device=None)\n--\n\n"
     "``block``'s ``size`` bytes went back to the system."},
    {"acquire", (PyCFunction)(void (*)(void))core_acquire, EMIT_FLAGS,
     "acquire($self, /, block, size, owner=None, device=None, requested=None)\n--\n\n"
     "A cached ``block`` was lent to ``owner`` again (a pool hit); ``requested`` as\n"
     "for :meth:`alloc`."},
    {"release", (PyCFunction)(void (*)(void))core_release, EMIT_FLAGS,
     "release($self, /, block, size, device=None)\n--\n\n"
     "A lent ``block`` came back to the cache; the component still holds it."},
    {"resize", (PyCFunction)(void (*)(void))core_resize, EMIT_FLAGS,
     "resize($self, /, block, old_size, size, device=None)\n--\n\n"
     "``block`` changed from ``old_size`` to ``size`` bytes."},
    {"transfer", (PyCFunction)(void (*)(void))core_transfer, EMIT_FLAGS,
     "transfer($self, /, size, src, dst, block=0)\n--\n\n"
     "``size`` bytes were copied from device ``src`` to ``dst``."},
    {"_lend", (PyCFunction)(void (*)(void))core_lend, METH_FASTCALL,
     "_lend($self, kind, block, size, owner, device, tags, /)\n--\n\n"
     "Append a lending event (an alloc or an acquire, *kind*) with *tags* as given:\n"
     "the sited reporters' emits, once they have found their tags."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef core_members[] = {
    {"_batch", T_OBJECT_EX, offsetof(EmitCore, batch), 0,
     "The events emitted and not yet handed on."},
    {"_limit", T_OBJECT_EX, offsetof(EmitCore, limit), 0,
     "An emit calls _full() once len(_batch) reaches this."},
    {"_clock", T_OBJECT_EX, offsetof(EmitCore, clock), 0,
     "Stamps every event (called once per emit, before _seq)."},
    {"_seq", T_OBJECT_EX, offsetof(EmitCore, seq), 0,
     "Numbers every event (called once per emit, after _clock)."},
    {"component", T_OBJECT_EX, offsetof(EmitCore, component), 0,
     "The component every event is stamped with."},
    {"owner", T_OBJECT_EX, offsetof(EmitCore, owner), 0,
     "The owner stamped when an emit names none."},
    {"device", T_OBJECT_EX, offsetof(EmitCore, device), 0,
     "The device stamped when an emit names none."},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot core_slots[] = {
    {Py_tp_doc,
     "The fields an emit reads and the six emits, compiled: the base of\n"
     "memactor.runtime.MemoryReporter, which adds everything else."},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_dealloc, core_dealloc},
    {Py_tp_traverse, core_traverse},
    {Py_tp_clear, core_clear},
    {Py_tp_methods, core_methods},
    {Py_tp_members, core_members},
    {0, NULL},
};

static PyType_Spec core_spec = {
    .name = "memactor._native._emit.EmitCore",
    .basicsize = sizeof(EmitCore),
    .itemsize = 0,
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = core_slots,
};

/* -- merge ------------------------------------------------------------------------------ */

/* An event to sort: its number, then its place in the concatenation of the runs (in
 * order of their first numbers), which breaks ties as a stable sort would; so the order
 * is total, and the keys may be gathered in any order. */
typedef struct {
    int64_t seq;
    Py_ssize_t at;
    EventRecord *record;
} Keyed;

static inline int
keyed_before(const Keyed *a, const Keyed *b)
{
    return a->seq < b->seq || (a->seq == b->seq && a->at < b->at);
}

/* Sorts keys[0, count): merges their natural ascending runs pairwise, in about log2(runs)
 * passes. *spare* has room for count keys. Returns where the sorted keys are. */
static Keyed *
stable_sort(Keyed *keys, Keyed *spare, Py_ssize_t count, Py_ssize_t *bounds)
{
    /* bounds: the starts of the runs, then count; room for count + 1. */
    Py_ssize_t runs = 0;
    bounds[runs++] = 0;
    for (Py_ssize_t i = 1; i < count; i++) {
        if (keyed_before(&keys[i], &keys[i - 1])) {
            bounds[runs++] = i;
        }
    }
    bounds[runs] = count;
    Keyed *from = keys, *to = spare;
    while (runs > 1) {
        Py_ssize_t merged = 0;
        for (Py_ssize_t r = 0; r < runs; r += 2) {
            Py_ssize_t start = bounds[r], middle = bounds[r + 1];
            Py_ssize_t stop = r + 2 <= runs ? bounds[r + 2] : middle;
            Py_ssize_t a = start, b = middle, out = start;
            while (a < middle && b < stop) {
                to[out++] = keyed_before(&from[b], &from[a]) ? from[b++] : from[a++];
            }
            while (a < middle) {
                to[out++] = from[a++];
            }
            while (b < stop) {
                to[out++] = from[b++];
            }
            bounds[merged++] = start;
        }
        bounds[merged] = count;
        runs = merged;
        Keyed *swap = from;
        from = to;
        to = swap;
    }
    return from;
}

/* merge(runs): see the docstring below. */
static PyObject *
emit_merge(PyObject *module, PyObject *given)
{
    PyObject *runs_list = PySequence_List(given);
    if (runs_list == NULL) {
        return NULL;
    }
    Py_ssize_t run_count = PyList_GET_SIZE(runs_list);
    PyObject *result = NULL;
    /* owned: a reference to each run as a Batch; runs: the non-empty ones, in order. */
    EventBatchObject **owned = PyMem_Calloc(run_count > 0 ? run_count : 1, sizeof(*owned));
    EventBatchObject **runs = PyMem_Calloc(run_count > 0 ? run_count : 1, sizeof(*runs));
    int64_t *firsts = PyMem_Calloc(run_count > 0 ? run_count : 1, sizeof(int64_t));
    Keyed *keys = NULL, *spare = NULL;
    Py_ssize_t *bounds = NULL, *lanes = NULL;
    int64_t *lasts = NULL;
    EventBatchObject *merged = NULL;
    if (owned == NULL || runs == NULL || firsts == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    /* Each run as a Batch (a list's events are made records): the code that may run
     * meanwhile (an iterator, a collection) runs before any record is read. */
    Py_ssize_t held = 0;
    for (Py_ssize_t i = 0; i < run_count; i++) {
        PyObject *run = PyList_GET_ITEM(runs_list, i);
        if (batch_check(run)) {
            owned[held++] = (EventBatchObject *)Py_NewRef(run);
            continue;
        }
        EventBatchObject *batch = batch_make(batch_type, 0);
        if (batch == NULL) {
            goto done;
        }
        owned[held++] = batch;
        if (batch_extend_with(batch, run) < 0) {
            goto done;
        }
    }
    merged = batch_make(batch_type, 0);
    if (merged == NULL) {
        goto done;
    }
    /* From here on nothing but memory is allocated until the records are copied. The
     * runs in order of their first numbers (after equals: a stable sort), empty ones
     * left out. */
    Py_ssize_t kept = 0, total = 0;
    for (Py_ssize_t i = 0; i < held; i++) {
        EventBatchObject *batch = owned[i];
        if (batch->length == 0) {
            continue;
        }
        int64_t first;
        if (!record_seq(&batch->records[0], &first)) {
            result = Py_NewRef(Py_None);
            goto done;
        }
        Py_ssize_t at = kept;
        while (at > 0 && firsts[at - 1] > first) {
            at--;
        }
        memmove(&runs[at + 1], &runs[at], (kept - at) * sizeof(*runs));
        memmove(&firsts[at + 1], &firsts[at], (kept - at) * sizeof(int64_t));
        runs[at] = batch;
        firsts[at] = first;
        kept++;
        total += batch->length;
    }
    int interleaved = 0;
    int64_t last = -1;
    for (Py_ssize_t r = 0; r < kept; r++) {
        EventBatchObject *run = runs[r];
        int64_t run_last;
        if (!record_seq(&run->records[run->length - 1], &run_last)) {
            result = Py_NewRef(Py_None);
            goto done;
        }
        if (firsts[r] <= last) {
            interleaved = 1;
            break;
        }
        last = run_last;
    }
    if (batch_reserve(merged, total) < 0) {
        goto done;
    }
    if (!interleaved) {
        for (Py_ssize_t r = 0; r < kept; r++) {
            if (batch_copy_from(merged, runs[r], 0, runs[r]->length, 1) < 0) {
                goto done;
            }
        }
    }
    else {
        keys = PyMem_Malloc(total * sizeof(Keyed));
        spare = PyMem_Malloc(total * sizeof(Keyed));
        bounds = PyMem_Malloc((total + 1) * sizeof(Py_ssize_t));
        lanes = PyMem_Malloc(kept * sizeof(Py_ssize_t));
        lasts = PyMem_Malloc(kept * sizeof(int64_t));
        if (keys == NULL || spare == NULL || bounds == NULL || lanes == NULL ||
            lasts == NULL) {
            PyErr_NoMemory();
            goto done;
        }
        /* Lanes: each run goes after the first lane's last run that it follows, so a
         * reporter's runs of the round line up in one lane, ascending; the keys gathered
         * lane by lane are then about as many ascending runs as there are reporters. */
        Py_ssize_t lane_count = 0;
        for (Py_ssize_t r = 0; r < kept; r++) {
            EventBatchObject *run = runs[r];
            int64_t run_last;
            if (!record_seq(&run->records[run->length - 1], &run_last)) {
                result = Py_NewRef(Py_None);
                goto done;
            }
            Py_ssize_t lane = 0;
            while (lane < lane_count && lasts[lane] >= firsts[r]) {
                lane++;
            }
            if (lane == lane_count) {
                lane_count++;
            }
            lasts[lane] = run_last;
            lanes[r] = lane;
        }
        Py_ssize_t at = 0;
        for (Py_ssize_t lane = 0; lane < lane_count; lane++) {
            Py_ssize_t start = 0;
            for (Py_ssize_t r = 0; r < kept; r++) {
                EventBatchObject *run = runs[r];
                if (lanes[r] == lane) {
                    for (Py_ssize_t i = 0; i < run->length; i++) {
                        if (!record_seq(&run->records[i], &keys[at].seq)) {
                            result = Py_NewRef(Py_None);
                            goto done;
                        }
                        keys[at].at = start + i;
                        keys[at++].record = &run->records[i];
                    }
                }
                start += run->length;
            }
        }
        for (Py_ssize_t r = 0; r < kept; r++) {
            track_like(merged, (PyObject *)runs[r]);
        }
        Keyed *sorted = stable_sort(keys, spare, total, bounds);
        for (Py_ssize_t i = 0; i < total; i++) {
            record_copy(&merged->records[i], sorted[i].record);
        }
        merged->length = total;
    }
    result = Py_BuildValue("(OO)", (PyObject *)merged, interleaved ? Py_True : Py_False);

done:
    Py_XDECREF(merged);
    if (owned != NULL) {
        for (Py_ssize_t r = 0; r < run_count; r++) {
            Py_XDECREF(owned[r]);
        }
    }
    PyMem_Free(owned);
    PyMem_Free(runs);
    PyMem_Free(firsts);
    PyMem_Free(keys);
    PyMem_Free(spare);
    PyMem_Free(bounds);
    PyMem_Free(lanes);
    PyMem_Free(lasts);
    Py_DECREF(runs_list);
    return result;
}

static PyMethodDef emit_functions[] = {
    {"merge", (PyCFunction)emit_merge, METH_O,
     "merge(runs, /)\n--\n\n"
     "The events of *runs* (each a Batch or a sequence of event tuples, in order of\n"
     "their numbers) in order of their numbers, as (Batch, interleaved): the runs\n"
     "sorted by their first numbers and concatenated when none overlaps the one before\n"
     "(interleaved False), else every event stably sorted by its number (True): what\n"
     "sorting the concatenation by number in Python gives. None where an event's number\n"
     "is not an int within int64 (the caller sorts those in Python)."},
    {NULL, NULL, 0, NULL},
};

/* -- the module ----------------------------------------------------------------------- */

static PyObject *
attribute_of(const char *module_name, const char *name)
{
    PyObject *module = PyImport_ImportModule(module_name);
    if (module == NULL) {
        return NULL;
    }
    PyObject *value = PyObject_GetAttrString(module, name);
    Py_DECREF(module);
    return value;
}

static int
intern_names(void)
{
    struct {
        PyObject **slot;
        const char *text;
    } names[] = {
        {&name_block, "block"},   {&name_size, "size"},       {&name_owner, "owner"},
        {&name_device, "device"}, {&name_requested, "requested"},
        {&name_old_size, "old_size"}, {&name_src, "src"},     {&name_dst, "dst"},
        {&full_name, "_full"},    {&append_name, "append"},   {&requested_tag, "requested"},
        {&empty_string, ""},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        *names[i].slot = PyUnicode_InternFromString(names[i].text);
        if (*names[i].slot == NULL) {
            return -1;
        }
    }
    return 0;
}

/* The constants, made by the first import; a second import (after the module was taken
 * out of sys.modules) reuses them. */
static int
make_constants(void)
{
    if (wrapper_type != NULL) {
        return 0;
    }
    if (intern_names() < 0) {
        return -1;
    }
    empty_tuple = PyTuple_New(0);
    if (empty_tuple == NULL) {
        return -1;
    }
    for (int kind = 0; kind < 6; kind++) {
        kind_ints[kind] = PyLong_FromLong(kind);
        if (kind_ints[kind] == NULL) {
            return -1;
        }
    }
    monotonic_ns = attribute_of("time", "monotonic_ns");
    if (monotonic_ns == NULL) {
        return -1;
    }
    count_type = (PyTypeObject *)attribute_of("itertools", "count");
    if (count_type == NULL) {
        return -1;
    }
    PyObject *count = PyObject_CallNoArgs((PyObject *)count_type);
    if (count == NULL) {
        return -1;
    }
    PyObject *next = PyObject_GetAttrString(count, "__next__");
    Py_DECREF(count);
    if (next == NULL) {
        return -1;
    }
    wrapper_type = (PyTypeObject *)Py_NewRef(Py_TYPE(next));
    Py_DECREF(next);
    return 0;
}

static int
emit_exec(PyObject *module)
{
    if (make_constants() < 0) {
        return -1;
    }

    PyObject *core = PyType_FromModuleAndSpec(module, &core_spec, NULL);
    if (core == NULL) {
        return -1;
    }
    if (PyModule_AddObject(module, "EmitCore", core) < 0) {
        Py_DECREF(core);
        return -1;
    }
    if (PyModule_AddObjectRef(module, "REQUESTED_TAG", requested_tag) < 0) {
        return -1;
    }
    PyObject *batch = PyType_FromModuleAndSpec(module, &batch_spec, NULL);
    if (batch == NULL) {
        return -1;
    }
    if (PyModule_AddObjectRef(module, "Batch", batch) < 0) {
        Py_DECREF(batch);
        return -1;
    }
    PyObject *counter = PyType_FromModuleAndSpec(module, &counter_spec, NULL);
    if (counter == NULL) {
        Py_DECREF(batch);
        return -1;
    }
    if (PyModule_AddObjectRef(module, "Counter", counter) < 0) {
        Py_DECREF(batch);
        Py_DECREF(counter);
        return -1;
    }
    if (PyModule_AddIntConstant(module, "RECORDS_VERSION", MEMACTOR_RECORDS_VERSION) < 0) {
        Py_DECREF(batch);
        Py_DECREF(counter);
        return -1;
    }
    /* Kept for the process's life (see batch_type): the emits and merge compare with
     * them. */
    Py_XSETREF(batch_type, (PyTypeObject *)batch);
    Py_XSETREF(counter_type, (PyTypeObject *)counter);
    return 0;
}

static PyModuleDef_Slot emit_module_slots[] = {
    {Py_mod_exec, emit_exec},
#ifdef Py_mod_multiple_interpreters
    /* The constants above are per process. */
    {Py_mod_multiple_interpreters, Py_MOD_MULTIPLE_INTERPRETERS_NOT_SUPPORTED},
#endif
    {0, NULL},
};

static struct PyModuleDef emit_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "memactor._native._emit",
    .m_doc = "The memory reporter's emits, compiled (see memactor.runtime.MemoryReporter).",
    .m_size = 0,
    .m_methods = emit_functions,
    .m_slots = emit_module_slots,
};

PyMODINIT_FUNC
PyInit__emit(void)
{
    return PyModuleDef_Init(&emit_module);
}

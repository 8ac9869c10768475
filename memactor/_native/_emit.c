/* memactor._native._emit: the memory reporter's emits, compiled.
 *
 * EmitCore is the base of memactor.runtime.MemoryReporter when this module loads. It
 * holds the fields an emit reads (the batch, the batch's limit, the clock, the event
 * numbering, the component, the default owner and device) and implements the six emits
 * (alloc, free, acquire, release, resize, transfer). Each builds exactly the tuple that
 * the pure-Python reference (memactor/runtime/_emits.py, PyEmits) builds, reading the
 * same fields and calling the same callables in the same order: the batch, the
 * component, the device's truth, the owner, the clock, str(requested), the numbering.
 * Then it appends the tuple and, once len(batch) >= _limit, calls self._full(), which
 * stays in Python with the rest of the reporter (handing on, drops, close).
 *
 * Two callables get a fast path that gives the same values: time.monotonic_ns (read with
 * clock_gettime(CLOCK_MONOTONIC), as CPython does on Linux) and the __next__ of an
 * itertools.count (its tp_iternext, called directly). Anything else is called through
 * vectorcall. Which path a callable takes is found by the first emit that meets it in
 * the attribute, and kept until the attribute changes: one pointer comparison an emit.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <time.h>

#if defined(__GNUC__)
#define ALWAYS_INLINE __attribute__((always_inline))
#else
#define ALWAYS_INLINE
#endif

enum { KIND_ALLOC = 0, KIND_FREE, KIND_RESIZE, KIND_ACQUIRE, KIND_RELEASE, KIND_TRANSFER };
enum { CALL_ANY = 0, CALL_MONOTONIC_NS, CALL_ITERNEXT };

/* Module-wide constants, made once at import and kept for the process's life. */
static PyObject *kind_ints[6];
static PyObject *empty_string;
static PyObject *requested_tag;
static PyObject *full_name;
static PyObject *append_name;
static PyObject *monotonic_ns;  /* the time.monotonic_ns builtin */
static PyTypeObject *wrapper_type;  /* type(itertools.count().__next__) */
static PyTypeObject *count_type;  /* itertools.count */

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

/* -- calling the clock and the numbering ---------------------------------------------- */

/* Where CPython's time.monotonic_ns is clock_gettime(CLOCK_MONOTONIC) (Linux), read it
 * the same way; elsewhere (macOS uses mach_absolute_time, Windows its own counter) the
 * builtin is called like any other clock. */
#if defined(__linux__) && defined(CLOCK_MONOTONIC)
#define MONOTONIC_FAST_PATH 1
static inline PyObject *
read_monotonic_ns(void)
{
    struct timespec now;
    if (clock_gettime(CLOCK_MONOTONIC, &now) != 0) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return PyLong_FromLongLong((long long)now.tv_sec * 1000000000LL + now.tv_nsec);
}
#else
#define MONOTONIC_FAST_PATH 0
static inline PyObject *
read_monotonic_ns(void)
{
    return PyObject_CallNoArgs(monotonic_ns);
}
#endif

/* Inlined: an emit calls it twice, and a call costs as much as its fast paths. */
static inline ALWAYS_INLINE PyObject *
call_stamp(PyObject *callable, int call, PyObject *iterator)
{
    if (call == CALL_MONOTONIC_NS) {
        return read_monotonic_ns();
    }
    if (call == CALL_ITERNEXT) {
        PyObject *value = Py_TYPE(iterator)->tp_iternext(iterator);
        if (value == NULL && !PyErr_Occurred()) {
            PyErr_SetNone(PyExc_StopIteration);
        }
        return value;
    }
    return PyObject_CallNoArgs(callable);
}

/* How *callable* will be called: CALL_MONOTONIC_NS, CALL_ITERNEXT (with *iterator* set
 * to a new reference to the count), or CALL_ANY; -1 with an exception on error. */
static int
classify(PyObject *callable, PyObject **iterator)
{
    *iterator = NULL;
    if (MONOTONIC_FAST_PATH && callable == monotonic_ns) {
        return CALL_MONOTONIC_NS;
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
static inline ALWAYS_INLINE PyObject *
stamp_of(Stamp *stamp, PyObject *callable)
{
    if (callable != stamp->seen) {
        PyObject *iterator;
        int call = classify(callable, &iterator);
        if (call < 0) {
            return NULL;
        }
        PyObject *old_seen = stamp->seen, *old_iterator = stamp->iterator;
        stamp->seen = Py_NewRef(callable);
        stamp->iterator = iterator;
        stamp->call = call;
        Py_XDECREF(old_seen);
        Py_XDECREF(old_iterator);
    }
    return call_stamp(stamp->seen, stamp->call, stamp->iterator);
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

/* Builds the event and appends it: kind, component, block, size, device (or the
 * reporter's when *device* is not true; for a transfer, *device* as given), owner (the
 * reporter's when *owner* is NULL or None; "" for events that lend nothing), the clock,
 * old_size, dst, tags (*given_tags*, or made from *requested*), the number. Then calls
 * _full() when the batch reached _limit. */
static PyObject *
emit(EmitCore *self, PyObject *kind, PyObject *block, PyObject *size, PyObject *device,
     int device_as_given, PyObject *owner, int lends, PyObject *old_size, PyObject *dst,
     PyObject *requested, PyObject *given_tags)
{
    PyObject *batch = self->batch;
    if (batch == NULL) {
        return missing("_batch");
    }
    if (self->component == NULL) {
        return missing("component");
    }
    PyObject *event = PyTuple_New(11);
    if (event == NULL) {
        return NULL;
    }
    Py_INCREF(batch);
    PyTuple_SET_ITEM(event, 0, Py_NewRef(kind));
    PyTuple_SET_ITEM(event, 1, Py_NewRef(self->component));
    PyTuple_SET_ITEM(event, 2, Py_NewRef(block));
    PyTuple_SET_ITEM(event, 3, Py_NewRef(size));

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
    PyTuple_SET_ITEM(event, 4, Py_NewRef(device));

    if (!lends) {
        owner = empty_string;
    }
    else if (owner == NULL || owner == Py_None) {
        owner = self->owner;
        if (owner == NULL) {
            missing("owner");
            goto error;
        }
    }
    PyTuple_SET_ITEM(event, 5, Py_NewRef(owner));

    if (self->clock == NULL) {
        missing("_clock");
        goto error;
    }
    PyObject *now = stamp_of(&self->clock_stamp, self->clock);
    if (now == NULL) {
        goto error;
    }
    PyTuple_SET_ITEM(event, 6, now);
    PyTuple_SET_ITEM(event, 7, Py_NewRef(old_size));
    PyTuple_SET_ITEM(event, 8, Py_NewRef(dst));

    PyObject *tags;
    if (given_tags != NULL) {
        tags = Py_NewRef(given_tags);
    }
    else if (requested == NULL || requested == Py_None) {
        tags = PyTuple_New(0);  /* the empty tuple, as () is */
    }
    else {
        PyObject *text = PyObject_Str(requested);
        if (text == NULL) {
            goto error;
        }
        PyObject *tag = PyTuple_Pack(2, requested_tag, text);
        Py_DECREF(text);
        if (tag == NULL) {
            goto error;
        }
        tags = PyTuple_Pack(1, tag);
        Py_DECREF(tag);
    }
    if (tags == NULL) {
        goto error;
    }
    PyTuple_SET_ITEM(event, 9, tags);

    if (self->seq == NULL) {
        missing("_seq");
        goto error;
    }
    PyObject *number = stamp_of(&self->seq_stamp, self->seq);
    if (number == NULL) {
        goto error;
    }
    PyTuple_SET_ITEM(event, 10, number);

    Py_ssize_t length;
    if (PyList_CheckExact(batch)) {
        if (PyList_Append(batch, event) < 0) {
            goto error;
        }
        length = PyList_GET_SIZE(batch);
    }
    else {
        PyObject *appended = PyObject_CallMethodOneArg(batch, append_name, event);
        if (appended == NULL) {
            goto error;
        }
        Py_DECREF(appended);
        length = PyObject_Size(batch);
        if (length < 0) {
            goto error;
        }
    }
    Py_DECREF(event);
    Py_DECREF(batch);
    int full;
    PyObject *limit = self->limit;
    if (limit != NULL && PyLong_CheckExact(limit)) {
        int overflow;
        long long bound = PyLong_AsLongLongAndOverflow(limit, &overflow);
        full = overflow ? overflow < 0 : (long long)length >= bound;
    }
    else if (limit == NULL) {
        return missing("_limit");
    }
    else {
        PyObject *size = PyLong_FromSsize_t(length);
        if (size == NULL) {
            return NULL;
        }
        full = PyObject_RichCompareBool(size, limit, Py_GE);
        Py_DECREF(size);
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

error:
    Py_DECREF(event);
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
    .m_slots = emit_module_slots,
};

PyMODINIT_FUNC
PyInit__emit(void)
{
    return PyModuleDef_Init(&emit_module);
}

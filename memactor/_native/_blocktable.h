/* memactor/_native/_blocktable.h: an account's live blocks, in C (included by _ledger.c).
 *
 * Blocks is a mapping from block id to the packed record the pure-Python ledger keeps in
 * a dict (size in bits 0-47, owner index in 48-71, allocation time from bit 72), with a
 * dict's semantics where the ledger and its readers use them: lookup, insert, delete,
 * length, truth, iteration in insertion order (a record rewritten in place keeps its
 * place, as in a dict), keys(), values(), items(), get(), equality with a dict. It
 * stores each block in 24 bytes instead of a dict entry and two int objects:
 *
 *   entries  the blocks in insertion order, {id, time, size | owner << 48}, with holes
 *            (id HOLE) where a block was deleted; a delete of the last entry shrinks it;
 *   index    an open-addressing table (linear probing, Fibonacci hashing, at most 3/4
 *            full, deletion by backward shift: no tombstones) of positions in entries.
 *
 * When entries is full it is rebuilt to 1.5 times the live blocks (dropping the holes),
 * and so is a table that has lost seven eighths of its blocks: at most about 52 bytes a
 * live block while filling, whatever the order of frees. An owner index of 2**16 - 1 or
 * more (a ledger that knows that many owners at once) is kept in a side dict and marked
 * WIDE in the entry.
 *
 * Ids are ints in [0, 2**63). A key that no stored id can equal (a negative or larger
 * int, a string, a float with a fraction) is simply not found, as in a dict; an int
 * subclass, an integral float, an object with __index__ and any other number equal to
 * an int (a Fraction, a Decimal, a complex) find the id they equal; an unhashable key
 * raises TypeError, as in a dict.
 *
 * Not thread-safe: the ledger belongs to one task. Memory comes from PyMem_* (so
 * tracemalloc counts it).
 */
#ifndef MEMACTOR_BLOCKTABLE_H
#define MEMACTOR_BLOCKTABLE_H

#define HOLE (-1)
#define EMPTY_SLOT (-1)
#define WIDE_OWNER 0xFFFFu
#define LOW_SIZE_MASK ((((uint64_t)1) << 48) - 1)
#define MIN_INDEX 8

typedef struct {
    int64_t key;
    int64_t time;
    uint64_t low; /* size | owner << 48 (WIDE_OWNER: the owner is in the wide dict) */
} Entry;

typedef struct {
    PyObject_HEAD
    Entry *entries;
    int32_t *index;
    Py_ssize_t count;    /* live blocks */
    Py_ssize_t used;     /* entries written, holes included */
    Py_ssize_t capacity; /* entries allocated */
    uint64_t mask;       /* index size - 1 (0 while index is NULL) */
    int shift;           /* 64 - log2(index size) */
    PyObject *wide;      /* {id: owner index} for owner indexes >= WIDE_OWNER, or NULL */
} Blocks;

static PyTypeObject BlocksType;

static inline uint64_t
bt_home(const Blocks *t, int64_t key)
{
    return ((uint64_t)key * 0x9E3779B97F4A7C15ULL) >> t->shift;
}

/* The index slot holding *key*: >= 0, or -1 - (the empty slot where it would go); -1
 * - 0 as well for a table with no index yet (bt_insert makes one first). */
static inline int64_t
bt_slot(const Blocks *t, int64_t key)
{
    if (t->index == NULL)
        return -1;
    const int32_t *index = t->index;
    const Entry *entries = t->entries;
    for (uint64_t i = bt_home(t, key);; i = (i + 1) & t->mask) {
        int32_t e = index[i];
        if (e == EMPTY_SLOT)
            return -1 - (int64_t)i;
        if (entries[e].key == key)
            return (int64_t)i;
    }
}

static inline Entry *
bt_find(const Blocks *t, int64_t key)
{
    int64_t slot = bt_slot(t, key);
    return slot < 0 ? NULL : &t->entries[t->index[slot]];
}

/* The owner index of *entry* (reading the wide dict where it is WIDE): -1 on error. */
static int64_t
bt_owner(const Blocks *t, const Entry *entry)
{
    uint64_t owner = entry->low >> 48;
    if (owner != WIDE_OWNER)
        return (int64_t)owner;
    PyObject *key = PyLong_FromLongLong(entry->key);
    if (key == NULL)
        return -1;
    PyObject *value = t->wide == NULL ? NULL : PyDict_GetItemWithError(t->wide, key);
    Py_DECREF(key);
    if (value == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_RuntimeError, "a block's wide owner index is missing");
        return -1;
    }
    return PyLong_AsLongLong(value);
}

/* Set *entry*'s owner index: 0 or -1 on error (the entry is then unchanged). */
static int
bt_set_owner(Blocks *t, Entry *entry, uint64_t owner)
{
    uint64_t was = entry->low >> 48;
    if (owner < WIDE_OWNER && was != WIDE_OWNER) {
        entry->low = (entry->low & LOW_SIZE_MASK) | (owner << 48);
        return 0;
    }
    PyObject *key = PyLong_FromLongLong(entry->key);
    if (key == NULL)
        return -1;
    int failed = 0;
    if (owner >= WIDE_OWNER) {
        PyObject *value = PyLong_FromUnsignedLongLong(owner);
        if (t->wide == NULL && (t->wide = PyDict_New()) == NULL)
            failed = 1;
        else if (value == NULL || PyDict_SetItem(t->wide, key, value) < 0)
            failed = 1;
        Py_XDECREF(value);
        if (!failed)
            entry->low = (entry->low & LOW_SIZE_MASK) | ((uint64_t)WIDE_OWNER << 48);
    }
    else {
        failed = PyDict_DelItem(t->wide, key) < 0;
        if (!failed)
            entry->low = (entry->low & LOW_SIZE_MASK) | (owner << 48);
    }
    Py_DECREF(key);
    return failed ? -1 : 0;
}

/* Rebuild entries (holes dropped) with room for *capacity* and an index that keeps
 * them at most 3/4 full; 0, or -1 with MemoryError and the table unchanged. */
static int
bt_rebuild(Blocks *t, Py_ssize_t capacity)
{
    if (capacity < t->count)
        capacity = t->count;
    uint64_t size = MIN_INDEX;
    int bits = 3;
    while (size * 3 < (uint64_t)capacity * 4) {
        size <<= 1;
        bits++;
    }
    if (capacity > INT32_MAX) {
        PyErr_SetString(PyExc_MemoryError, "an account holds more than 2**31 live blocks");
        return -1;
    }
    Entry *entries = PyMem_Malloc((size_t)(capacity ? capacity : 1) * sizeof(Entry));
    int32_t *index = PyMem_Malloc(size * sizeof(int32_t));
    if (entries == NULL || index == NULL) {
        PyMem_Free(entries);
        PyMem_Free(index);
        PyErr_NoMemory();
        return -1;
    }
    memset(index, 0xff, size * sizeof(int32_t)); /* EMPTY_SLOT everywhere */
    Py_ssize_t n = 0;
    for (Py_ssize_t i = 0; i < t->used; i++)
        if (t->entries[i].key != HOLE)
            entries[n++] = t->entries[i];
    PyMem_Free(t->entries);
    PyMem_Free(t->index);
    t->entries = entries;
    t->index = index;
    t->capacity = capacity;
    t->used = n;
    t->mask = size - 1;
    t->shift = 64 - bits;
    for (Py_ssize_t e = 0; e < n; e++) {
        uint64_t i = bt_home(t, entries[e].key);
        while (index[i] != EMPTY_SLOT)
            i = (i + 1) & t->mask;
        index[i] = (int32_t)e;
    }
    return 0;
}

/* Add *key* (not in the table) with its record; the new entry, or NULL with an error.
 * The owner index must fit below WIDE_OWNER or be set with bt_set_owner after. */
static Entry *
bt_insert(Blocks *t, int64_t key, int64_t time, uint64_t low)
{
    if (t->used == t->capacity && bt_rebuild(t, t->count + t->count / 2 + 8) < 0)
        return NULL;
    int64_t slot = bt_slot(t, key);
    if (slot >= 0) {
        PyErr_SetString(PyExc_RuntimeError, "a block was added twice");
        return NULL;
    }
    uint64_t i = (uint64_t)(-1 - slot);
    Entry *entry = &t->entries[t->used];
    entry->key = key;
    entry->time = time;
    entry->low = low;
    t->index[i] = (int32_t)t->used;
    t->used++;
    t->count++;
    return entry;
}

/* Delete the block in index slot *slot* (from bt_slot); 0, or -1 with an error (only
 * from the wide dict; the block is deleted all the same). Entry pointers taken before
 * do not survive it. */
static int
bt_delete(Blocks *t, int64_t slot)
{
    int failed = 0;
    uint64_t mask = t->mask, i = (uint64_t)slot, j = i;
    int32_t e = t->index[i];
    Entry *entry = &t->entries[e];
    if ((entry->low >> 48) == WIDE_OWNER)
        failed = bt_set_owner(t, entry, 0);
    entry->key = HOLE;
    for (;;) {
        j = (j + 1) & mask;
        int32_t moved = t->index[j];
        if (moved == EMPTY_SLOT)
            break;
        uint64_t k = bt_home(t, t->entries[moved].key);
        /* The entry at j may move back to i unless its home lies cyclically in (i, j]. */
        if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
            continue;
        t->index[i] = moved;
        i = j;
    }
    t->index[i] = EMPTY_SLOT;
    t->count--;
    while (t->used > 0 && t->entries[t->used - 1].key == HOLE)
        t->used--;
    if (t->capacity > 64 && t->count < t->capacity / 8) {
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        if (bt_rebuild(t, t->count + t->count / 2 + 8) < 0)
            PyErr_Clear(); /* too little memory to shrink: keep the bigger table */
        PyErr_Restore(type, value, tb);
    }
    return failed ? -1 : 0;
}

/* ---- Python's view: a mapping of ints to packed records --------------------------- */

/* Any other key (a Fraction, a Decimal, a complex, a str): a dict finds the int it
 * equals, and a number equal to an int has that int's hash (the numeric hash invariant).
 * The ids in [0, 2**63) with the key's hash are at most five: compare it to each. 1 and
 * *out*, 0 when it equals none, -1 on error (TypeError for an unhashable key, as a dict
 * raises). */
static int
bt_key_by_hash(PyObject *key, int64_t *out)
{
    Py_hash_t hash = PyObject_Hash(key);
    if (hash == -1)
        return -1;
    if (hash < 0)
        return 0;
#if defined(PyHASH_MODULUS)
    const uint64_t modulus = PyHASH_MODULUS;
#elif defined(_PyHASH_MODULUS)
    const uint64_t modulus = _PyHASH_MODULUS;
#else
    const uint64_t modulus = ((uint64_t)1 << 61) - 1;
#endif
    for (uint64_t id = (uint64_t)hash; id <= (uint64_t)INT64_MAX; id += modulus) {
        PyObject *candidate = PyLong_FromUnsignedLongLong(id);
        if (candidate == NULL)
            return -1;
        int equal = PyObject_RichCompareBool(key, candidate, Py_EQ);
        Py_DECREF(candidate);
        if (equal != 0) {
            *out = (int64_t)id;
            return equal;
        }
        if (id > (uint64_t)INT64_MAX - modulus)
            break;
    }
    return 0;
}

/* *key* as a block id: 1 and *out*, 0 when no stored id can equal it, -1 on error. */
static int
bt_key(PyObject *key, int64_t *out)
{
    if (PyLong_Check(key)) {
        if (small_int(key, out))
            return *out >= 0;
        int overflow;
        long long value = PyLong_AsLongLongAndOverflow(key, &overflow);
        if (value == -1 && PyErr_Occurred())
            return -1;
        *out = value;
        return !overflow && value >= 0;
    }
    if (PyFloat_Check(key)) {
        double value = PyFloat_AS_DOUBLE(key);
        if (!(value >= 0 && value < 9223372036854775808.0) || value != (double)(int64_t)value)
            return 0;
        *out = (int64_t)value;
        return 1;
    }
    if (Py_TYPE(key)->tp_as_number == NULL || Py_TYPE(key)->tp_as_number->nb_index == NULL)
        return bt_key_by_hash(key, out);
    PyObject *index = PyNumber_Index(key);
    if (index == NULL)
        return -1;
    int result = bt_key(index, out);
    Py_DECREF(index);
    return result;
}

static PyObject *
bt_record(const Blocks *t, const Entry *entry)
{
    int64_t owner = bt_owner(t, entry);
    if (owner < 0)
        return NULL;
    Record record = {entry->low & LOW_SIZE_MASK, (uint64_t)owner, entry->time};
    return record_make(&record);
}

static PyObject *
Blocks_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    if ((kwargs != NULL && PyDict_GET_SIZE(kwargs)) || PyTuple_GET_SIZE(args)) {
        PyErr_SetString(PyExc_TypeError, "Blocks() takes no arguments");
        return NULL;
    }
    return type->tp_alloc(type, 0);
}

static void
Blocks_dealloc(Blocks *t)
{
    PyMem_Free(t->entries);
    PyMem_Free(t->index);
    Py_XDECREF(t->wide);
    Py_TYPE(t)->tp_free((PyObject *)t);
}

static Py_ssize_t
Blocks_length(Blocks *t)
{
    return t->count;
}

/* The entry of *key*: 1 (in *entry*), 0 when absent, -1 on error. */
static int
bt_lookup(Blocks *t, PyObject *key, Entry **entry)
{
    int64_t id;
    int valid = bt_key(key, &id);
    if (valid <= 0)
        return valid;
    *entry = bt_find(t, id);
    return *entry != NULL;
}

static PyObject *
Blocks_subscript(Blocks *t, PyObject *key)
{
    Entry *entry;
    int found = bt_lookup(t, key, &entry);
    if (found < 0)
        return NULL;
    if (!found) {
        PyErr_SetObject(PyExc_KeyError, key);
        return NULL;
    }
    return bt_record(t, entry);
}

static int
Blocks_ass_subscript(Blocks *t, PyObject *key, PyObject *value)
{
    int64_t id;
    int valid = bt_key(key, &id);
    if (valid < 0)
        return -1;
    if (value == NULL) {
        int64_t slot = valid ? bt_slot(t, id) : -1;
        if (slot < 0) {
            PyErr_SetObject(PyExc_KeyError, key);
            return -1;
        }
        return bt_delete(t, slot);
    }
    if (!valid) {
        PyErr_Format(PyExc_TypeError, "a block id is an int in [0, 2**63), got %R", key);
        return -1;
    }
    Record record;
    if (record_read(value, &record) < 0)
        return -1;
    Entry *entry = bt_find(t, id);
    if (entry == NULL && (entry = bt_insert(t, id, record.time, record.size)) == NULL)
        return -1;
    entry->time = record.time;
    entry->low = (entry->low & ~LOW_SIZE_MASK) | record.size;
    return bt_set_owner(t, entry, record.owner);
}

static int
Blocks_contains(Blocks *t, PyObject *key)
{
    Entry *entry;
    return bt_lookup(t, key, &entry);
}

static PyObject *
Blocks_get(Blocks *t, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "get(block, default=None)");
        return NULL;
    }
    Entry *entry;
    int found = bt_lookup(t, args[0], &entry);
    if (found < 0)
        return NULL;
    if (found)
        return bt_record(t, entry);
    PyObject *fallback = nargs == 2 ? args[1] : Py_None;
    Py_INCREF(fallback);
    return fallback;
}

enum { KEYS, VALUES, ITEMS };

/* A list of the keys, records or (key, record) pairs, in insertion order. Making a pair
 * may run the garbage collector, and a finalizer may change the table: the entries are
 * read afresh at each step, and RuntimeError says the table changed size meanwhile. */
static PyObject *
bt_list(Blocks *t, int what)
{
    PyObject *list = PyList_New(t->count);
    if (list == NULL)
        return NULL;
    Py_ssize_t n = 0;
    for (Py_ssize_t i = 0; i < t->used; i++) {
        const Entry *entry = &t->entries[i];
        if (entry->key == HOLE)
            continue;
        if (n == PyList_GET_SIZE(list))
            goto changed;
        PyObject *key = NULL, *record = NULL, *item;
        if (what != VALUES && (key = PyLong_FromLongLong(entry->key)) == NULL)
            goto fail;
        if (what != KEYS && (record = bt_record(t, entry)) == NULL) {
            Py_XDECREF(key);
            goto fail;
        }
        if (what == ITEMS) {
            item = PyTuple_Pack(2, key, record);
            Py_DECREF(key);
            Py_DECREF(record);
            if (item == NULL)
                goto fail;
        }
        else
            item = what == KEYS ? key : record;
        PyList_SET_ITEM(list, n++, item);
    }
    if (n == PyList_GET_SIZE(list))
        return list;
changed:
    PyErr_SetString(PyExc_RuntimeError, "Blocks changed size during iteration");
fail:
    Py_DECREF(list);
    return NULL;
}

static PyObject *
Blocks_keys(Blocks *t, PyObject *unused)
{
    return bt_list(t, KEYS);
}

static PyObject *
Blocks_values(Blocks *t, PyObject *unused)
{
    return bt_list(t, VALUES);
}

static PyObject *
Blocks_items(Blocks *t, PyObject *unused)
{
    return bt_list(t, ITEMS);
}

static PyObject *
Blocks_iter(Blocks *t)
{
    PyObject *keys = bt_list(t, KEYS);
    if (keys == NULL)
        return NULL;
    PyObject *iterator = PyObject_GetIter(keys);
    Py_DECREF(keys);
    return iterator;
}

static PyObject *
Blocks_clear(Blocks *t, PyObject *unused)
{
    PyMem_Free(t->entries);
    PyMem_Free(t->index);
    Py_CLEAR(t->wide);
    t->entries = NULL;
    t->index = NULL;
    t->count = t->used = t->capacity = 0;
    t->mask = 0;
    Py_RETURN_NONE;
}

/* copy_into(ids, sizes, owners, times, start): write the live blocks, in insertion
 * order, into four writable int64 buffers (numpy arrays) from position *start*: ids,
 * sizes, owner indexes and allocation times. Returns the position after the last. */
static PyObject *
Blocks_copy_into(Blocks *t, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "copy_into(ids, sizes, owners, times, start)");
        return NULL;
    }
    Py_ssize_t start = PyNumber_AsSsize_t(args[4], PyExc_OverflowError);
    if (start == -1 && PyErr_Occurred())
        return NULL;
    Py_buffer views[4];
    int got = 0;
    PyObject *result = NULL;
    for (; got < 4; got++) {
        if (PyObject_GetBuffer(args[got], &views[got], PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS |
                                                           PyBUF_FORMAT) < 0)
            goto done;
        const char *format = views[got].format;
        if (views[got].itemsize != 8 || format == NULL ||
            !(strcmp(format, "l") == 0 || strcmp(format, "q") == 0 ||
              strcmp(format, "<q") == 0 || strcmp(format, "=q") == 0)) {
            got++;
            PyErr_SetString(PyExc_TypeError, "copy_into writes to int64 arrays");
            goto done;
        }
        if (start < 0 || views[got].len / 8 - start < t->count) {
            got++;
            PyErr_SetString(PyExc_ValueError, "copy_into: the arrays are too short");
            goto done;
        }
    }
    int64_t *ids = (int64_t *)views[0].buf + start, *sizes = (int64_t *)views[1].buf + start;
    int64_t *owners = (int64_t *)views[2].buf + start, *times = (int64_t *)views[3].buf + start;
    Py_ssize_t n = 0;
    for (Py_ssize_t i = 0; i < t->used; i++) {
        const Entry *entry = &t->entries[i];
        if (entry->key == HOLE)
            continue;
        int64_t owner = bt_owner(t, entry);
        if (owner < 0)
            goto done;
        ids[n] = entry->key;
        sizes[n] = (int64_t)(entry->low & LOW_SIZE_MASK);
        owners[n] = owner;
        times[n] = entry->time;
        n++;
    }
    result = PyLong_FromSsize_t(start + n);
done:
    for (int i = 0; i < got; i++)
        PyBuffer_Release(&views[i]);
    return result;
}

static PyObject *
Blocks_richcompare(Blocks *t, PyObject *other, int op)
{
    if ((op != Py_EQ && op != Py_NE) ||
        !(PyDict_Check(other) || PyObject_TypeCheck(other, &BlocksType)))
        Py_RETURN_NOTIMPLEMENTED;
    PyObject *mine = bt_list(t, ITEMS), *as_dict = NULL, *theirs = NULL;
    if (mine == NULL || (as_dict = PyDict_New()) == NULL)
        goto fail;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(mine); i++) {
        PyObject *item = PyList_GET_ITEM(mine, i);
        if (PyDict_SetItem(as_dict, PyTuple_GET_ITEM(item, 0), PyTuple_GET_ITEM(item, 1)) < 0)
            goto fail;
    }
    if (PyDict_Check(other)) {
        theirs = other;
        Py_INCREF(theirs);
    }
    else if ((theirs = PyDict_New()) == NULL || PyDict_Merge(theirs, other, 1) < 0)
        goto fail;
    PyObject *result = PyObject_RichCompare(as_dict, theirs, op);
    Py_DECREF(mine);
    Py_DECREF(as_dict);
    Py_DECREF(theirs);
    return result;
fail:
    Py_XDECREF(mine);
    Py_XDECREF(as_dict);
    Py_XDECREF(theirs);
    return NULL;
}

static PyObject *
Blocks_repr(Blocks *t)
{
    return PyUnicode_FromFormat("<Blocks: %zd live>", t->count);
}

static PyObject *
Blocks_sizeof(Blocks *t, PyObject *unused)
{
    size_t index = t->index == NULL ? 0 : (t->mask + 1) * sizeof(int32_t);
    return PyLong_FromSize_t(sizeof(Blocks) + (size_t)t->capacity * sizeof(Entry) + index);
}

static PyMappingMethods Blocks_as_mapping = {
    (lenfunc)Blocks_length,
    (binaryfunc)Blocks_subscript,
    (objobjargproc)Blocks_ass_subscript,
};

static PySequenceMethods Blocks_as_sequence = {
    .sq_contains = (objobjproc)Blocks_contains,
};

static PyMethodDef Blocks_methods[] = {
    {"get", (PyCFunction)(void (*)(void))Blocks_get, METH_FASTCALL,
     "get(block, default=None): the block's packed record, or *default*."},
    {"keys", (PyCFunction)Blocks_keys, METH_NOARGS, "A list of the live block ids."},
    {"values", (PyCFunction)Blocks_values, METH_NOARGS, "A list of the packed records."},
    {"items", (PyCFunction)Blocks_items, METH_NOARGS, "A list of (id, packed record)."},
    {"clear", (PyCFunction)Blocks_clear, METH_NOARGS, "Forget every block."},
    {"copy_into", (PyCFunction)(void (*)(void))Blocks_copy_into, METH_FASTCALL,
     "copy_into(ids, sizes, owners, times, start) -> end: the live blocks into four "
     "int64 arrays, from position start."},
    {"__sizeof__", (PyCFunction)Blocks_sizeof, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject BlocksType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "memactor._native._ledger.Blocks",
    .tp_basicsize = sizeof(Blocks),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "An account's live blocks: a mapping of block ids to packed records, kept in "
              "24 bytes a block (see memactor/_native/_blocktable.h).",
    .tp_new = Blocks_new,
    .tp_dealloc = (destructor)Blocks_dealloc,
    .tp_as_mapping = &Blocks_as_mapping,
    .tp_as_sequence = &Blocks_as_sequence,
    .tp_iter = (getiterfunc)Blocks_iter,
    .tp_methods = Blocks_methods,
    .tp_richcompare = (richcmpfunc)Blocks_richcompare,
    .tp_repr = (reprfunc)Blocks_repr,
    .tp_hash = PyObject_HashNotImplemented,
};

#endif

/*
 * QuickLZ block decoder, levels 1 and 3: the optional C accelerator of
 * core/decompress/quicklz.py (issue 16). Our own code, written from the format
 * description in formats.md section 5.3 and from quicklz.py, whose decoding it
 * repeats step by step: the same checks, in the same order, returning the same
 * error codes, so that both give the same bytes or the same refusal for any input
 * (tests/core/test_quicklz.py runs both on the same blocks, damaged ones included).
 * Licensed as the rest of Sealcheck (Apache-2.0); no QuickLZ source is used.
 *
 * Every read of the input is checked against its length and every write against
 * the stated decoded size before it happens: a hostile block is refused, it never
 * reads or writes outside its buffers. The GIL is released while a block decodes.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

enum { QLZ_OK = 0, QLZ_ENDS_EARLY = 1, QLZ_BAD_MATCH = 2, QLZ_PAST_SIZE = 3 };

#define SENTINEL 0x80000000u
#define HASH_SIZE 4096

/* Literals that follow in a control word: its trailing zero bits, at most 4. */
static const uint8_t RUN[16] = {4, 0, 1, 0, 2, 0, 1, 0, 3, 0, 1, 0, 2, 0, 1, 0};

/* A little-endian u32 at s; bytes past the end read as zero (quicklz.py pads). */
static uint32_t load32(const uint8_t *src, size_t len, size_t s)
{
    uint32_t v = 0;
    if (s <= len && len - s >= 4)
        return (uint32_t)src[s] | (uint32_t)src[s + 1] << 8 | (uint32_t)src[s + 2] << 16 |
               (uint32_t)src[s + 3] << 24;
    for (size_t i = 0; i < 4 && s + i < len; i++)
        v |= (uint32_t)src[s + i] << (8 * i);
    return v;
}

static void hash_at(uint32_t *table, const uint8_t *dst, size_t h)
{
    uint32_t v = (uint32_t)dst[h] | (uint32_t)dst[h + 1] << 8 | (uint32_t)dst[h + 2] << 16;
    table[((v >> 12) ^ v) & 0xFFF] = (uint32_t)h;
}

/* Decode src[s:len] into dst[0:dsize]; 0, or an error code. */
static int decode(const uint8_t *src, size_t len, size_t s, uint8_t *dst, size_t dsize, int level)
{
    uint32_t table[HASH_SIZE];
    size_t d = 0;
    int64_t hashed = -1; /* the last output position entered into the table */
    uint32_t cword = 1;

    if (level == 1)
        memset(table, 0, sizeof table);
    for (;;) {
        if (cword == 1) {
            if (len - s < 4)
                return QLZ_ENDS_EARLY;
            cword = load32(src, len, s) | SENTINEL;
            s += 4;
        }
        if (cword & 1) {
            uint32_t f = load32(src, len, s);
            size_t from, n, k;
            cword >>= 1;
            if (level == 1) {
                from = table[(f >> 4) & 0xFFF];
                if (f & 0xF) {
                    n = (f & 0xF) + 2;
                    k = 2;
                } else {
                    n = (f >> 16) & 0xFF;
                    k = 3;
                }
                if (len - s < k)
                    return QLZ_ENDS_EARLY;
                if (from >= d || n < 3)
                    return QLZ_BAD_MATCH;
            } else {
                size_t dist;
                if ((f & 3) == 0) {
                    dist = (f & 0xFF) >> 2, n = 3, k = 1;
                } else if ((f & 2) == 0) {
                    dist = (f & 0xFFFF) >> 2, n = 3, k = 2;
                } else if ((f & 1) == 0) {
                    dist = (f & 0xFFFF) >> 6, n = ((f >> 2) & 15) + 3, k = 2;
                } else if ((f & 127) != 3) {
                    dist = (f >> 7) & 0x1FFFF, n = ((f >> 2) & 0x1F) + 2, k = 3;
                } else {
                    dist = f >> 15, n = ((f >> 7) & 255) + 3, k = 4;
                }
                if (len - s < k)
                    return QLZ_ENDS_EARLY;
                if (dist == 0 || dist > d)
                    return QLZ_BAD_MATCH;
                from = d - dist;
            }
            if (dsize - d < n)
                return QLZ_PAST_SIZE;
            s += k;
            if (d - from >= n) {
                memcpy(dst + d, dst + from, n);
            } else { /* overlapping: each byte may be one just written */
                for (size_t i = 0; i < n; i++)
                    dst[d + i] = dst[from + i];
            }
            if (level == 1) {
                /* The table holds every position up to the match's start, none inside. */
                while (hashed < (int64_t)d) {
                    hashed++;
                    hash_at(table, dst, (size_t)hashed);
                }
                hashed = (int64_t)(d + n) - 1;
            }
            d += n;
        } else if (d + 11 < dsize) {
            size_t n = RUN[cword & 0xF];
            if (len - s < n)
                return QLZ_ENDS_EARLY;
            memcpy(dst + d, src + s, n);
            d += n;
            s += n;
            cword >>= n;
            if (level == 1) {
                while (hashed < (int64_t)d - 3) {
                    hashed++;
                    hash_at(table, dst, (size_t)hashed);
                }
            }
        } else {
            /* The last bytes of a block are literals; the control word still counts them. */
            while (d < dsize) {
                if (cword == 1) {
                    s += 4;
                    cword = SENTINEL;
                }
                if (s >= len)
                    return QLZ_ENDS_EARLY;
                dst[d++] = src[s++];
                cword >>= 1;
            }
            return QLZ_OK;
        }
    }
}

PyDoc_STRVAR(decode_doc,
             "decode(block, level, header_size, dsize) -> bytes | int\n\n"
             "The decoded block, or quicklz.py's error code (1: ends early, 2: a match\n"
             "outside the data, 3: past the stated size).");

static PyObject *qlz_decode(PyObject *self, PyObject *args)
{
    Py_buffer buf;
    int level, rc;
    Py_ssize_t hdr, dsize;
    PyObject *out;

    (void)self;
    if (!PyArg_ParseTuple(args, "y*inn:decode", &buf, &level, &hdr, &dsize))
        return NULL;
    if ((level != 1 && level != 3) || hdr < 0 || hdr > buf.len || dsize < 0) {
        PyBuffer_Release(&buf);
        PyErr_SetString(PyExc_ValueError, "decode: level must be 1 or 3, sizes in range");
        return NULL;
    }
    out = PyBytes_FromStringAndSize(NULL, dsize);
    if (out == NULL) {
        PyBuffer_Release(&buf);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    rc = decode((const uint8_t *)buf.buf, (size_t)buf.len, (size_t)hdr,
                (uint8_t *)PyBytes_AS_STRING(out), (size_t)dsize, level);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&buf);
    if (rc != QLZ_OK) {
        Py_DECREF(out);
        return PyLong_FromLong(rc);
    }
    return out;
}

static PyMethodDef methods[] = {
    {"decode", qlz_decode, METH_VARARGS, decode_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_quicklz", "QuickLZ block decoder (levels 1 and 3), in C.", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__quicklz(void) { return PyModule_Create(&module); }

/*
 * _core.c - the CPython extension behind the hydb package: thin wrappers
 * over libhydb (src/hydb.h) with numpy arrays in and out.
 *
 * Rules kept throughout:
 *  - every input is checked and converted before the library is called, so
 *    a bad input raises and writes nothing;
 *  - the GIL is released around every library call that does real work
 *    (add, search, delete, encode, the geometry loops); while it is
 *    released, only C memory owned by objects this call holds references
 *    to is touched;
 *  - a handle counts the calls running on it, so close() while another
 *    thread uses it raises instead of freeing memory under that thread;
 *  - library failures raise hydb.Error subclasses carrying the library's
 *    one-line message from hydb_last_error(), read on the failing thread.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/arrayobject.h>

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hydb.h>

/* ---- errors ------------------------------------------------------------ */

#define N_CODES 18 /* -HYDB_EEXIST + 1 */
static PyObject *Error;             /* hydb.Error */
static PyObject *code_errors[N_CODES]; /* by -code */

static PyObject *error_class(int code)
{
	if (code < 0 && -code < N_CODES && code_errors[-code])
		return code_errors[-code];
	return Error;
}

/* Raise the library's failure: its one-line message, the code's class. */
static PyObject *raise_lib(int rc)
{
	PyObject *cls = error_class(rc);
	PyErr_SetString(cls, hydb_last_error());
	return NULL;
}

/* Raise a check made here with the class of a library code. */
static PyObject *raise_code(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	PyErr_FormatV(error_class(code), fmt, ap);
	va_end(ap);
	return NULL;
}

/* ---- arrays ------------------------------------------------------------ */

/*
 * Turn obj into a C-contiguous, aligned, native float32 array of rank 1 or
 * 2 (rank 1 only when allow_1d). Numbers of any float or integer dtype are
 * converted (float32 C-contiguous input is used in place, no copy); other
 * dtypes raise TypeError; a non-contiguous array raises (the caller decides
 * the copy, not us); dim (0 = any) must match the last axis.
 */
static PyArrayObject *as_f32(PyObject *obj, const char *what, size_t dim, int allow_1d)
{
	PyArrayObject *a, *b;
	char kind;
	int nd;

	if (obj == Py_None) {
		PyErr_Format(PyExc_TypeError, "%s: expected an array, got None", what);
		return NULL;
	}
	if (PyArray_Check(obj)) {
		Py_INCREF(obj);
		a = (PyArrayObject *)obj;
	} else {
		/* __array__, the buffer protocol, nested sequences */
		a = (PyArrayObject *)PyArray_FromAny(obj, NULL, 0, 0, 0, NULL);
		if (!a) {
			PyObject *t, *v, *tb;
			PyErr_Fetch(&t, &v, &tb);
			PyErr_Format(PyExc_TypeError, "%s: cannot be read as an array of numbers (%S)", what,
				     v ? v : Py_None);
			Py_XDECREF(t);
			Py_XDECREF(v);
			Py_XDECREF(tb);
			return NULL;
		}
	}
	kind = PyArray_DESCR(a)->kind;
	if (!((kind == 'f' && PyArray_DESCR(a)->elsize <= 8) || kind == 'i' || kind == 'u')) {
		PyErr_Format(PyExc_TypeError, "%s: dtype %S cannot be converted to float32", what,
			     (PyObject *)PyArray_DESCR(a));
		Py_DECREF(a);
		return NULL;
	}
	nd = PyArray_NDIM(a);
	if (!(nd == 2 || (nd == 1 && allow_1d))) {
		PyObject *shape = PyObject_GetAttrString((PyObject *)a, "shape");
		PyErr_Format(error_class(HYDB_EINVAL), "%s: expected shape %s, got %S", what,
			     allow_1d ? "(dim,) or (n, dim)" : "(n, dim)", shape ? shape : Py_None);
		Py_XDECREF(shape);
		Py_DECREF(a);
		return NULL;
	}
	if (dim && (size_t)PyArray_DIM(a, nd - 1) != dim) {
		raise_code(HYDB_EDIM, "%s: dimension %zd, expected %zu", what, (Py_ssize_t)PyArray_DIM(a, nd - 1),
			   dim);
		Py_DECREF(a);
		return NULL;
	}
	if (!PyArray_IS_C_CONTIGUOUS(a)) {
		raise_code(HYDB_EINVAL, "%s: the array is not C-contiguous (a slice or transpose?); "
			   "pass numpy.ascontiguousarray(...) to copy it", what);
		Py_DECREF(a);
		return NULL;
	}
	b = (PyArrayObject *)PyArray_FromArray(a, PyArray_DescrFromType(NPY_FLOAT32),
					       NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED | NPY_ARRAY_FORCECAST);
	Py_DECREF(a);
	return b;
}

/* A 1-D array of n integers of type npy (e.g. NPY_INT64), or NULL with an
 * error. */
static PyArrayObject *as_ints(PyObject *obj, const char *what, Py_ssize_t n, int npy)
{
	PyArrayObject *a = (PyArrayObject *)PyArray_FROM_OTF(obj, npy, NPY_ARRAY_IN_ARRAY | NPY_ARRAY_FORCECAST);
	if (!a)
		return NULL;
	if (PyArray_NDIM(a) != 1 || PyArray_DIM(a, 0) != n) {
		Py_DECREF(a);
		raise_code(HYDB_EINVAL, "%s: expected %zd values", what, n);
		return NULL;
	}
	return a;
}

static PyObject *new_array(int nd, npy_intp *shape, int type)
{
	return PyArray_ZEROS(nd, shape, type, 0);
}

/* UTF-8 of a str without embedded NUL (the library takes C strings); the
 * pointer lives as long as the str. */
static const char *utf8_of(PyObject *s, const char *what, Py_ssize_t i)
{
	Py_ssize_t len;
	const char *u;
	if (!PyUnicode_Check(s)) {
		PyErr_Format(PyExc_TypeError, "%s %zd: expected str, got %s", what, i, Py_TYPE(s)->tp_name);
		return NULL;
	}
	u = PyUnicode_AsUTF8AndSize(s, &len);
	if (!u)
		return NULL;
	if ((Py_ssize_t)strlen(u) != len) {
		raise_code(HYDB_EINVAL, "%s %zd: contains a NUL character", what, i);
		return NULL;
	}
	return u;
}

/* ---- Database ---------------------------------------------------------- */

typedef struct {
	PyObject_HEAD
	hydb_db *db;
	int busy;   /* calls running on the handle (changed with the GIL held) */
	size_t dim;
	double curvature;
} DatabaseObject;

static PyTypeObject DatabaseType;

static int db_enter(DatabaseObject *self)
{
	if (!self->db) {
		raise_code(HYDB_EINVAL, "the database is closed");
		return -1;
	}
	self->busy++;
	return 0;
}

static void db_leave(DatabaseObject *self)
{
	self->busy--;
}

static PyObject *core_open(PyObject *mod, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"path", "dim", "curvature", "create", "readonly", "m", "ef_construction",
				 "nosync", NULL};
	PyObject *pathb = NULL;
	Py_ssize_t dim = 0;
	double c = 1.0;
	int create = 0, readonly = 0, nosync = 0, rc;
	unsigned m = 0, efc = 0;
	hydb_open_options o;
	hydb_db *db = NULL;
	DatabaseObject *self;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "O&|ndppIIp", kwlist, PyUnicode_FSConverter, &pathb, &dim,
					 &c, &create, &readonly, &m, &efc, &nosync))
		return NULL;
	if (dim < 0) {
		Py_DECREF(pathb);
		return raise_code(HYDB_EINVAL, "dim must be positive, got %zd", dim);
	}
	hydb_open_options_init(&o);
	o.flags = (create ? HYDB_OPEN_CREATE : 0) | (readonly ? HYDB_OPEN_RDONLY : 0) | (nosync ? HYDB_OPEN_NOSYNC : 0);
	o.dim = (size_t)dim;
	o.curvature = c;
	o.hnsw_m = m;
	o.hnsw_ef_construction = efc;
	Py_BEGIN_ALLOW_THREADS
	rc = hydb_open(&db, PyBytes_AS_STRING(pathb), &o);
	Py_END_ALLOW_THREADS
	Py_DECREF(pathb);
	if (rc < 0)
		return raise_lib(rc);
	self = PyObject_New(DatabaseObject, &DatabaseType);
	if (!self) {
		hydb_close(db);
		return NULL;
	}
	self->db = db;
	self->busy = 0;
	self->dim = hydb_dim(db);
	self->curvature = hydb_curvature(db);
	return (PyObject *)self;
}

static PyObject *Database_close(DatabaseObject *self, PyObject *unused)
{
	hydb_db *db = self->db;
	if (!db)
		Py_RETURN_NONE;
	if (self->busy)
		return raise_code(HYDB_EBUSY, "close: %d call%s still running on this database in other threads",
				  self->busy, self->busy == 1 ? " is" : "s are");
	self->db = NULL;
	Py_BEGIN_ALLOW_THREADS
	hydb_close(db);
	Py_END_ALLOW_THREADS
	Py_RETURN_NONE;
}

static void Database_dealloc(DatabaseObject *self)
{
	/* A running call holds a reference, so busy is 0 here. */
	hydb_close(self->db);
	PyObject_Free(self);
}

static PyObject *Database_get_closed(DatabaseObject *self, void *unused)
{
	return PyBool_FromLong(self->db == NULL);
}

static PyObject *Database_get_dim(DatabaseObject *self, void *unused)
{
	return PyLong_FromSize_t(self->dim);
}

static PyObject *Database_get_curvature(DatabaseObject *self, void *unused)
{
	return PyFloat_FromDouble(self->curvature);
}

static PyObject *Database_count(DatabaseObject *self, PyObject *unused)
{
	uint64_t n = 0;
	int rc;
	if (db_enter(self) < 0)
		return NULL;
	rc = hydb_count(self->db, &n);
	db_leave(self);
	if (rc < 0)
		return raise_lib(rc);
	return PyLong_FromUnsignedLongLong(n);
}

/* _add(keys: tuple[str], vectors, labels, modalities, items, captions, metas)
 * labels/modalities: None or n ints; items: None or n uint64; captions,
 * metas: None or a tuple of n (str or None). Returns the ids (uint64). */
/* add's inputs once converted: n rows, the optional columns NULL/None. */
struct add_in {
	PyObject *keys, *caps, *metas;
	PyArrayObject *vec, *lab, *mods, *items;
	Py_ssize_t n;
	size_t dim;
};

/* A label or modality column's value i, checked against its three codes. */
static int add_code(PyArrayObject *col, Py_ssize_t i, const char *what, const char *names,
		    int *out)
{
	int64_t v = ((const int64_t *)PyArray_DATA(col))[i];
	if (v < 0 || v > 2) {
		raise_code(HYDB_EINVAL, "%s %zd: %lld is not %s", what, i, (long long)v, names);
		return -1;
	}
	*out = (int)v;
	return 0;
}

static int add_record(const struct add_in *in, Py_ssize_t i, hydb_record *r)
{
	int v;
	if (!(r->key = utf8_of(PyTuple_GET_ITEM(in->keys, i), "key", i)))
		return -1;
	r->vector = (const float *)PyArray_DATA(in->vec) + (size_t)i * in->dim;
	if (in->lab) {
		if (add_code(in->lab, i, "labels", "0 (unknown), 1 (safe) or 2 (unsafe)", &v) < 0)
			return -1;
		r->label = (hydb_label)v;
	}
	if (in->mods) {
		if (add_code(in->mods, i, "modalities", "0 (other), 1 (image) or 2 (text)", &v) < 0)
			return -1;
		r->modality = (hydb_modality)v;
	}
	if (in->items)
		r->item = ((const uint64_t *)PyArray_DATA(in->items))[i];
	if (in->caps != Py_None && PyTuple_GET_ITEM(in->caps, i) != Py_None &&
	    !(r->caption = utf8_of(PyTuple_GET_ITEM(in->caps, i), "caption", i)))
		return -1;
	if (in->metas != Py_None && PyTuple_GET_ITEM(in->metas, i) != Py_None &&
	    !(r->meta = utf8_of(PyTuple_GET_ITEM(in->metas, i), "meta", i)))
		return -1;
	return 0;
}

/* Convert and check every column against n rows; 0, or -1 with the
 * exception set (what was converted is released by add_in_free). */
static int add_in_convert(struct add_in *in, PyObject *vecobj, PyObject *labobj, PyObject *modobj,
			  PyObject *itemobj)
{
	Py_ssize_t n = in->n;
	if (!(in->vec = as_f32(vecobj, "vectors", in->dim, 1)))
		return -1;
	Py_ssize_t rows = PyArray_NDIM(in->vec) == 1 ? 1 : PyArray_DIM(in->vec, 0);
	if (rows != n)
		return raise_code(HYDB_EINVAL, "add: %zd vectors for %zd keys", rows, n), -1;
	if ((labobj != Py_None && !(in->lab = as_ints(labobj, "labels", n, NPY_INT64))) ||
	    (modobj != Py_None && !(in->mods = as_ints(modobj, "modalities", n, NPY_INT64))) ||
	    (itemobj != Py_None && !(in->items = as_ints(itemobj, "items", n, NPY_UINT64))))
		return -1;
	if (in->caps != Py_None && (!PyTuple_Check(in->caps) || PyTuple_GET_SIZE(in->caps) != n))
		return raise_code(HYDB_EINVAL, "captions: expected %zd values", n), -1;
	if (in->metas != Py_None && (!PyTuple_Check(in->metas) || PyTuple_GET_SIZE(in->metas) != n))
		return raise_code(HYDB_EINVAL, "meta: expected %zd values", n), -1;
	return 0;
}

static void add_in_free(struct add_in *in)
{
	Py_XDECREF(in->vec);
	Py_XDECREF(in->lab);
	Py_XDECREF(in->mods);
	Py_XDECREF(in->items);
}

/* Fill the records and write them in one batch; ids receives their ids. */
static int add_put(DatabaseObject *self, const struct add_in *in, PyObject *ids)
{
	int rc;
	hydb_record *recs = PyMem_Calloc((size_t)in->n, sizeof *recs);
	if (!recs)
		return PyErr_NoMemory(), -1;
	for (Py_ssize_t i = 0; i < in->n; i++)
		if (add_record(in, i, &recs[i]) < 0) {
			PyMem_Free(recs);
			return -1;
		}
	if (db_enter(self) < 0) {
		PyMem_Free(recs);
		return -1;
	}
	Py_BEGIN_ALLOW_THREADS
	rc = hydb_put(self->db, recs, (size_t)in->n, (uint64_t *)PyArray_DATA((PyArrayObject *)ids));
	Py_END_ALLOW_THREADS
	db_leave(self);
	PyMem_Free(recs);
	return rc < 0 ? (raise_lib(rc), -1) : 0;
}

static PyObject *Database_add(DatabaseObject *self, PyObject *args)
{
	PyObject *vecobj, *labobj, *modobj, *itemobj, *ids = NULL;
	struct add_in in = {0};
	npy_intp shape[1];

	if (!PyArg_ParseTuple(args, "O!OOOOOO", &PyTuple_Type, &in.keys, &vecobj, &labobj, &modobj,
			      &itemobj, &in.caps, &in.metas))
		return NULL;
	if (!self->db)
		return raise_code(HYDB_EINVAL, "the database is closed");
	in.n = PyTuple_GET_SIZE(in.keys);
	in.dim = self->dim;
	if (add_in_convert(&in, vecobj, labobj, modobj, itemobj) == 0) {
		shape[0] = in.n;
		ids = new_array(1, shape, NPY_UINT64);
		if (ids && in.n > 0 && add_put(self, &in, ids) < 0)
			Py_CLEAR(ids);
	}
	add_in_free(&in);
	return ids;
}

static int parse_search_options(PyObject *args, PyObject **qobj, hydb_search_options *o)
{
	Py_ssize_t k, ef;
	int exact, redirect;
	unsigned lmask, mmask, cone = 0;
	double minr, maxr, bound;
	if (!PyArg_ParseTuple(args, "OnnpIIddid|I", qobj, &k, &ef, &exact, &lmask, &mmask, &minr, &maxr,
			      &redirect, &bound, &cone))
		return -1;
	if (k < 1 || k > HYDB_MAX_K) {
		raise_code(HYDB_EINVAL, "search: k must be 1..%d, got %zd", HYDB_MAX_K, k);
		return -1;
	}
	if (ef < 0 || ef > HYDB_MAX_EF) {
		raise_code(HYDB_EINVAL, "search: ef must be 0..%d, got %zd", HYDB_MAX_EF, ef);
		return -1;
	}
	hydb_search_options_init(o);
	o->k = (size_t)k;
	o->ef = (size_t)ef;
	o->exact = exact;
	o->label_mask = lmask;
	o->modality_mask = mmask;
	o->min_radius = minr;
	o->max_radius = maxr;
	o->redirect = (hydb_redirect)redirect;
	o->redirect_bound = bound;
	o->cone = cone;
	return 0;
}

static PyObject *str_or_none(const char *s)
{
	if (!s)
		Py_RETURN_NONE;
	return PyUnicode_DecodeUTF8(s, (Py_ssize_t)strlen(s), "replace");
}

/* _search(queries, k, ef, exact, label_mask, modality_mask, min_radius,
 * max_radius, redirect, bound[, cone]) -> (ids, distances, radii, labels,
 * modalities, items, keys, captions, redirected, query_radius,
 * searched_radius, plans), every array (n, k), padded with id 0, distance
 * inf, radius nan, label and modality -1, key and caption None. */
/* The arrays and lists _search returns. */
struct search_out {
	PyObject *ids, *d, *r, *l, *m, *it, *red, *qr, *sr, *keys, *caps, *plans;
};

static void search_out_free(struct search_out *o)
{
	PyObject **all[] = {&o->ids, &o->d, &o->r, &o->l, &o->m, &o->it,
			    &o->red, &o->qr, &o->sr, &o->keys, &o->caps, &o->plans};
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
		Py_CLEAR(*all[i]);
}

static int search_out_new(struct search_out *o, size_t nq, size_t k)
{
	npy_intp shape[2] = {(npy_intp)nq, (npy_intp)k};
	o->ids = new_array(2, shape, NPY_UINT64);
	o->d = new_array(2, shape, NPY_FLOAT64);
	o->r = new_array(2, shape, NPY_FLOAT32);
	o->l = new_array(2, shape, NPY_INT8);
	o->m = new_array(2, shape, NPY_INT8);
	o->it = new_array(2, shape, NPY_UINT64);
	o->red = new_array(1, shape, NPY_BOOL);
	o->qr = new_array(1, shape, NPY_FLOAT64);
	o->sr = new_array(1, shape, NPY_FLOAT64);
	o->keys = PyList_New((Py_ssize_t)nq);
	o->caps = PyList_New((Py_ssize_t)nq);
	o->plans = PyList_New((Py_ssize_t)nq);
	return o->ids && o->d && o->r && o->l && o->m && o->it && o->red && o->qr && o->sr &&
			       o->keys && o->caps && o->plans
		       ? 0
		       : -1;
}

#define SEARCH_OUT(o, name, type) ((type *)PyArray_DATA((PyArrayObject *)(o)->name))

/* Result j of query i into row i (padding past x->n); kl and cl are the
 * query's key and caption lists. */
static int search_out_hit(struct search_out *o, const hydb_results *x, size_t at, size_t j,
			  PyObject *kl, PyObject *cl)
{
	PyObject *ks, *cs;
	if (j < x->n) {
		SEARCH_OUT(o, ids, uint64_t)[at] = x->ids[j];
		SEARCH_OUT(o, d, double)[at] = x->distances[j];
		SEARCH_OUT(o, r, float)[at] = x->radii[j];
		SEARCH_OUT(o, l, int8_t)[at] = (int8_t)x->labels[j];
		SEARCH_OUT(o, m, int8_t)[at] = (int8_t)x->modalities[j];
		SEARCH_OUT(o, it, uint64_t)[at] = x->items[j];
		ks = str_or_none(x->keys[j]);
		cs = str_or_none(x->captions[j]);
	} else {
		SEARCH_OUT(o, d, double)[at] = INFINITY;
		SEARCH_OUT(o, r, float)[at] = NAN;
		SEARCH_OUT(o, l, int8_t)[at] = SEARCH_OUT(o, m, int8_t)[at] = -1;
		Py_INCREF(Py_None);
		Py_INCREF(Py_None);
		ks = cs = Py_None;
	}
	if (!ks || !cs) {
		Py_XDECREF(ks);
		Py_XDECREF(cs);
		return -1;
	}
	PyList_SET_ITEM(kl, (Py_ssize_t)j, ks);
	PyList_SET_ITEM(cl, (Py_ssize_t)j, cs);
	return 0;
}

static int search_out_query(struct search_out *o, const hydb_results *x, size_t i, size_t k)
{
	PyObject *kl = PyList_New((Py_ssize_t)k), *cl = PyList_New((Py_ssize_t)k), *p;
	if (!kl || !cl) {
		Py_XDECREF(kl);
		Py_XDECREF(cl);
		return -1;
	}
	PyList_SET_ITEM(o->keys, (Py_ssize_t)i, kl);
	PyList_SET_ITEM(o->caps, (Py_ssize_t)i, cl);
	for (size_t j = 0; j < k; j++)
		if (search_out_hit(o, x, i * k + j, j, kl, cl) < 0)
			return -1;
	SEARCH_OUT(o, red, npy_bool)[i] = (npy_bool)(x->redirected != 0);
	SEARCH_OUT(o, qr, double)[i] = x->query_radius;
	SEARCH_OUT(o, sr, double)[i] = x->searched_radius;
	if (!(p = PyUnicode_FromString(x->plan ? x->plan : "")))
		return -1;
	PyList_SET_ITEM(o->plans, (Py_ssize_t)i, p);
	return 0;
}

static PyObject *Database_search(DatabaseObject *self, PyObject *args)
{
	PyObject *qobj, *ret = NULL;
	PyArrayObject *q;
	hydb_search_options o;
	hydb_results **res = NULL;
	struct search_out out = {0};
	size_t nq;
	int rc;

	if (parse_search_options(args, &qobj, &o) < 0)
		return NULL;
	if (!self->db)
		return raise_code(HYDB_EINVAL, "the database is closed");
	if (!(q = as_f32(qobj, "queries", self->dim, 0)))
		return NULL;
	nq = (size_t)PyArray_DIM(q, 0);
	if (db_enter(self) < 0) {
		Py_DECREF(q);
		return NULL;
	}
	Py_BEGIN_ALLOW_THREADS
	rc = hydb_search_batch(self->db, &res, (const float *)PyArray_DATA(q), nq, &o);
	Py_END_ALLOW_THREADS
	db_leave(self);
	Py_DECREF(q);
	if (rc < 0)
		return raise_lib(rc);
	rc = search_out_new(&out, nq, o.k);
	for (size_t i = 0; rc == 0 && i < nq; i++)
		rc = search_out_query(&out, res[i], i, o.k);
	if (rc == 0)
		ret = Py_BuildValue("(OOOOOOOOOOOO)", out.ids, out.d, out.r, out.l, out.m, out.it,
				    out.keys, out.caps, out.red, out.qr, out.sr, out.plans);
	hydb_results_free_batch(res, nq);
	search_out_free(&out);
	return ret;
}

/* _search_c(queries, ...same options...): the C API's cost alone -
 * hydb_search_batch and hydb_results_free_batch, no Python objects built.
 * For benchmarks: the reference the Python path is measured against. */
static PyObject *Database_search_c(DatabaseObject *self, PyObject *args)
{
	PyObject *qobj;
	PyArrayObject *q;
	hydb_search_options o;
	hydb_results **res = NULL;
	size_t nq;
	int rc;

	if (parse_search_options(args, &qobj, &o) < 0)
		return NULL;
	if (!self->db)
		return raise_code(HYDB_EINVAL, "the database is closed");
	if (!(q = as_f32(qobj, "queries", self->dim, 0)))
		return NULL;
	nq = (size_t)PyArray_DIM(q, 0);
	if (db_enter(self) < 0) {
		Py_DECREF(q);
		return NULL;
	}
	Py_BEGIN_ALLOW_THREADS
	rc = hydb_search_batch(self->db, &res, (const float *)PyArray_DATA(q), nq, &o);
	if (rc == 0)
		hydb_results_free_batch(res, nq);
	Py_END_ALLOW_THREADS
	db_leave(self);
	Py_DECREF(q);
	if (rc < 0)
		return raise_lib(rc);
	Py_RETURN_NONE;
}

static PyObject *entry_tuple(const hydb_entry *e)
{
	npy_intp shape[1] = {(npy_intp)e->dim};
	PyObject *v = new_array(1, shape, NPY_FLOAT32);
	if (!v)
		return NULL;
	memcpy(PyArray_DATA((PyArrayObject *)v), e->vector, e->dim * sizeof(float));
	return Py_BuildValue("(KNNdiiKNN)", (unsigned long long)e->id, str_or_none(e->key), v, (double)e->radius,
			     (int)e->modality, (int)e->label, (unsigned long long)e->item, str_or_none(e->caption),
			     str_or_none(e->meta));
}

/* _get(key: str | id: int) -> (id, key, vector, radius, modality, label,
 * item, caption, meta) */
static PyObject *Database_get(DatabaseObject *self, PyObject *arg)
{
	hydb_entry *e = NULL;
	PyObject *t;
	int rc;
	if (db_enter(self) < 0)
		return NULL;
	if (PyUnicode_Check(arg)) {
		const char *k = utf8_of(arg, "key", 0);
		if (!k) {
			db_leave(self);
			return NULL;
		}
		Py_BEGIN_ALLOW_THREADS
		rc = hydb_get_key(self->db, k, &e);
		Py_END_ALLOW_THREADS
	} else {
		unsigned long long id = PyLong_AsUnsignedLongLong(arg);
		if (id == (unsigned long long)-1 && PyErr_Occurred()) {
			db_leave(self);
			PyErr_Clear();
			return PyErr_Format(PyExc_TypeError, "get: expected a key (str) or an id (int >= 0), got %R", arg);
		}
		Py_BEGIN_ALLOW_THREADS
		rc = hydb_get_id(self->db, (uint64_t)id, &e);
		Py_END_ALLOW_THREADS
	}
	db_leave(self);
	if (rc < 0)
		return raise_lib(rc);
	t = entry_tuple(e);
	hydb_entry_free(e);
	return t;
}

/* _delete(keys: tuple[str] | None, ids: array | None, missing_ok) -> count */
static PyObject *Database_delete(DatabaseObject *self, PyObject *args)
{
	PyObject *keys, *idobj;
	PyArrayObject *ids = NULL;
	const char **kp = NULL;
	int missing_ok, rc;
	size_t n = 0, done = 0;

	if (!PyArg_ParseTuple(args, "OOp", &keys, &idobj, &missing_ok))
		return NULL;
	if (!self->db)
		return raise_code(HYDB_EINVAL, "the database is closed");
	if (keys != Py_None) {
		if (!PyTuple_Check(keys))
			return PyErr_Format(PyExc_TypeError, "delete: keys must be a tuple");
		n = (size_t)PyTuple_GET_SIZE(keys);
		kp = PyMem_Calloc(n ? n : 1, sizeof *kp);
		if (!kp)
			return PyErr_NoMemory();
		for (size_t i = 0; i < n; i++)
			if (!(kp[i] = utf8_of(PyTuple_GET_ITEM(keys, (Py_ssize_t)i), "key", (Py_ssize_t)i))) {
				PyMem_Free(kp);
				return NULL;
			}
	} else {
		PyArrayObject *a = (PyArrayObject *)PyArray_FROM_OTF(idobj, NPY_UINT64, NPY_ARRAY_IN_ARRAY);
		if (!a)
			return NULL;
		if (PyArray_NDIM(a) != 1) {
			Py_DECREF(a);
			return raise_code(HYDB_EINVAL, "delete: ids must be one-dimensional");
		}
		ids = a;
		n = (size_t)PyArray_DIM(a, 0);
	}
	if (n == 0) {
		PyMem_Free(kp);
		Py_XDECREF(ids);
		return PyLong_FromLong(0);
	}
	if (db_enter(self) < 0) {
		PyMem_Free(kp);
		Py_XDECREF(ids);
		return NULL;
	}
	Py_BEGIN_ALLOW_THREADS
	rc = hydb_delete_batch(self->db, kp, ids ? (const uint64_t *)PyArray_DATA(ids) : NULL, n,
			       missing_ok ? HYDB_DELETE_MISSING_OK : 0, &done);
	Py_END_ALLOW_THREADS
	db_leave(self);
	PyMem_Free(kp);
	Py_XDECREF(ids);
	if (rc < 0)
		return raise_lib(rc);
	return PyLong_FromSize_t(done);
}

/* _stats() -> (count, ((n,...)x3)x3, radius_min, radius_max) */
static PyObject *Database_stats(DatabaseObject *self, PyObject *unused)
{
	hydb_db_stats s;
	int rc;
	if (db_enter(self) < 0)
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	rc = hydb_stats(self->db, &s);
	Py_END_ALLOW_THREADS
	db_leave(self);
	if (rc < 0)
		return raise_lib(rc);
	return Py_BuildValue("(K((KKK)(KKK)(KKK))dd)", (unsigned long long)s.count,
			     (unsigned long long)s.groups[0][0], (unsigned long long)s.groups[0][1],
			     (unsigned long long)s.groups[0][2], (unsigned long long)s.groups[1][0],
			     (unsigned long long)s.groups[1][1], (unsigned long long)s.groups[1][2],
			     (unsigned long long)s.groups[2][0], (unsigned long long)s.groups[2][1],
			     (unsigned long long)s.groups[2][2], s.radius_min, s.radius_max);
}

#define CHECK_MAX_MESSAGES 1000

struct check_ctx {
	char **msgs;
	size_t n;
};

static void check_msg(const char *msg, void *vctx)
{
	struct check_ctx *c = vctx;
	if (c->n < CHECK_MAX_MESSAGES && (c->msgs[c->n] = strdup(msg)))
		c->n++;
}

/* _check() -> (records, live_slots, keys, radius_entries, store_problems,
 * index_problems, unreachable, [messages]) */
static PyObject *Database_check(DatabaseObject *self, PyObject *unused)
{
	hydb_check_report r;
	struct check_ctx c = {NULL, 0};
	PyObject *msgs = NULL, *ret = NULL;
	int rc;
	if (db_enter(self) < 0)
		return NULL;
	c.msgs = PyMem_RawCalloc(CHECK_MAX_MESSAGES, sizeof *c.msgs);
	if (!c.msgs) {
		db_leave(self);
		return PyErr_NoMemory();
	}
	Py_BEGIN_ALLOW_THREADS
	rc = hydb_check(self->db, check_msg, &c, &r);
	Py_END_ALLOW_THREADS
	db_leave(self);
	if (rc < 0)
		raise_lib(rc);
	else if ((msgs = PyList_New(0))) {
		for (size_t i = 0; i < c.n; i++) {
			PyObject *s = str_or_none(c.msgs[i]);
			if (!s || PyList_Append(msgs, s) < 0) {
				Py_XDECREF(s);
				Py_CLEAR(msgs);
				break;
			}
			Py_DECREF(s);
		}
		if (msgs)
			ret = Py_BuildValue("(KKKKnnnN)", (unsigned long long)r.records,
					    (unsigned long long)r.live_slots, (unsigned long long)r.keys,
					    (unsigned long long)r.radius_entries, (Py_ssize_t)r.store_problems,
					    (Py_ssize_t)r.index_problems, (Py_ssize_t)r.unreachable, msgs);
	}
	for (size_t i = 0; i < c.n; i++)
		free(c.msgs[i]);
	PyMem_RawFree(c.msgs);
	return ret;
}

/* Export: columns grown as records arrive (the GIL is held: the callback
 * builds Python strings). */
struct export_ctx {
	size_t n, cap, dim;
	uint64_t *ids, *items;
	float *vecs, *radii;
	int8_t *labels, *mods;
	PyObject *keys, *caps, *metas;
};

static int export_grow(struct export_ctx *c)
{
	size_t cap = c->cap ? c->cap * 2 : 1024;
	void *p;
#define GROW(f, sz)                                                   \
	if (!(p = PyMem_Realloc(c->f, cap * (sz)))) return -1;        \
	c->f = p;
	GROW(ids, sizeof(uint64_t))
	GROW(items, sizeof(uint64_t))
	GROW(radii, sizeof(float))
	GROW(labels, 1)
	GROW(mods, 1)
	GROW(vecs, c->dim * sizeof(float))
#undef GROW
	c->cap = cap;
	return 0;
}

static int export_one(const hydb_entry *e, void *vctx)
{
	struct export_ctx *c = vctx;
	PyObject *s;
	if (e->dim != c->dim)
		return HYDB_ECORRUPT;
	if (c->n == c->cap && export_grow(c) < 0)
		return HYDB_ENOMEM;
	c->ids[c->n] = e->id;
	c->items[c->n] = e->item;
	c->radii[c->n] = e->radius;
	c->labels[c->n] = (int8_t)e->label;
	c->mods[c->n] = (int8_t)e->modality;
	memcpy(c->vecs + c->n * c->dim, e->vector, c->dim * sizeof(float));
	if (!(s = str_or_none(e->key)) || PyList_Append(c->keys, s) < 0)
		goto fail;
	Py_DECREF(s);
	if (!(s = str_or_none(e->caption)) || PyList_Append(c->caps, s) < 0)
		goto fail;
	Py_DECREF(s);
	if (!(s = str_or_none(e->meta)) || PyList_Append(c->metas, s) < 0)
		goto fail;
	Py_DECREF(s);
	c->n++;
	return HYDB_OK;
fail:
	Py_XDECREF(s);
	return HYDB_ENOMEM; /* a Python error is set */
}

static PyObject *column(const void *src, size_t n, size_t width, int type, size_t esize)
{
	npy_intp shape[2] = {(npy_intp)n, (npy_intp)width};
	PyObject *a = new_array(width ? 2 : 1, shape, type);
	if (a && n)
		memcpy(PyArray_DATA((PyArrayObject *)a), src, n * (width ? width : 1) * esize);
	return a;
}

/* _export() -> (ids, keys, vectors, radii, modalities, labels, items,
 * captions, metas) */
static PyObject *Database_export(DatabaseObject *self, PyObject *unused)
{
	struct export_ctx c;
	PyObject *ret = NULL;
	int rc;
	memset(&c, 0, sizeof c);
	if (db_enter(self) < 0)
		return NULL;
	c.dim = self->dim;
	c.keys = PyList_New(0);
	c.caps = PyList_New(0);
	c.metas = PyList_New(0);
	if (!c.keys || !c.caps || !c.metas)
		goto out;
	rc = hydb_each_entry(self->db, export_one, &c);
	if (rc < 0) {
		if (!PyErr_Occurred()) {
			if (rc == HYDB_ENOMEM && c.n == c.cap)
				PyErr_NoMemory();
			else
				raise_lib(rc);
		}
		goto out;
	}
	ret = Py_BuildValue("(NONNNNNOO)", column(c.ids, c.n, 0, NPY_UINT64, 8), c.keys,
			    column(c.vecs, c.n, c.dim, NPY_FLOAT32, 4), column(c.radii, c.n, 0, NPY_FLOAT32, 4),
			    column(c.mods, c.n, 0, NPY_INT8, 1), column(c.labels, c.n, 0, NPY_INT8, 1),
			    column(c.items, c.n, 0, NPY_UINT64, 8), c.caps, c.metas);
out:
	db_leave(self);
	PyMem_Free(c.ids);
	PyMem_Free(c.items);
	PyMem_Free(c.radii);
	PyMem_Free(c.labels);
	PyMem_Free(c.mods);
	PyMem_Free(c.vecs);
	Py_XDECREF(c.keys);
	Py_XDECREF(c.caps);
	Py_XDECREF(c.metas);
	return ret;
}

static PyMethodDef Database_methods[] = {
	{"close", (PyCFunction)Database_close, METH_NOARGS, "Close the database (idempotent)."},
	{"_count", (PyCFunction)Database_count, METH_NOARGS, NULL},
	{"_add", (PyCFunction)Database_add, METH_VARARGS, NULL},
	{"_search", (PyCFunction)Database_search, METH_VARARGS, NULL},
	{"_search_c", (PyCFunction)Database_search_c, METH_VARARGS, NULL},
	{"_get", (PyCFunction)Database_get, METH_O, NULL},
	{"_delete", (PyCFunction)Database_delete, METH_VARARGS, NULL},
	{"_stats", (PyCFunction)Database_stats, METH_NOARGS, NULL},
	{"_check", (PyCFunction)Database_check, METH_NOARGS, NULL},
	{"_export", (PyCFunction)Database_export, METH_NOARGS, NULL},
	{NULL, NULL, 0, NULL}};

static PyGetSetDef Database_getset[] = {
	{"dim", (getter)Database_get_dim, NULL, "Space dimension of the stored points.", NULL},
	{"curvature", (getter)Database_get_curvature, NULL, "c of the curvature -c.", NULL},
	{"closed", (getter)Database_get_closed, NULL, "True after close().", NULL},
	{NULL, NULL, NULL, NULL, NULL}};

static PyTypeObject DatabaseType = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "hydb._core._Database",
	.tp_basicsize = sizeof(DatabaseObject),
	.tp_dealloc = (destructor)Database_dealloc,
	.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
	.tp_doc = "A libhydb database handle (use hydb.open).",
	.tp_methods = Database_methods,
	.tp_getset = Database_getset,
};

/* ---- Model ------------------------------------------------------------- */

typedef struct {
	PyObject_HEAD
	hydb_model *m;
	int busy;
	size_t dim;
} ModelObject;

static PyTypeObject ModelType;

static int model_enter(ModelObject *self)
{
	if (!self->m) {
		raise_code(HYDB_EINVAL, "the model is closed");
		return -1;
	}
	self->busy++;
	return 0;
}

static PyObject *core_model_open(PyObject *mod, PyObject *arg)
{
	PyObject *pathb = NULL;
	hydb_model *m = NULL;
	ModelObject *self;
	int rc;
	if (!PyUnicode_FSConverter(arg, &pathb))
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	rc = hydb_model_open(&m, PyBytes_AS_STRING(pathb));
	Py_END_ALLOW_THREADS
	Py_DECREF(pathb);
	if (rc < 0)
		return raise_lib(rc);
	if (!(self = PyObject_New(ModelObject, &ModelType))) {
		hydb_model_close(m);
		return NULL;
	}
	self->m = m;
	self->busy = 0;
	self->dim = hydb_model_dim(m);
	return (PyObject *)self;
}

static void Model_dealloc(ModelObject *self)
{
	hydb_model_close(self->m);
	PyObject_Free(self);
}

static PyObject *Model_close(ModelObject *self, PyObject *unused)
{
	if (!self->m)
		Py_RETURN_NONE;
	if (self->busy)
		return raise_code(HYDB_EBUSY, "close: the model is in use by another thread");
	hydb_model_close(self->m);
	self->m = NULL;
	Py_RETURN_NONE;
}

static PyObject *Model_get_dim(ModelObject *self, void *unused)
{
	return PyLong_FromSize_t(self->dim);
}

static PyObject *Model_get_curvature(ModelObject *self, void *unused)
{
	if (model_enter(self) < 0)
		return NULL;
	self->busy--;
	return PyFloat_FromDouble(hydb_model_curvature(self->m));
}

static PyObject *Model_bound(ModelObject *self, PyObject *arg)
{
	long mod = PyLong_AsLong(arg);
	if (mod == -1 && PyErr_Occurred())
		return NULL;
	if (mod != HYDB_MOD_IMAGE && mod != HYDB_MOD_TEXT)
		return raise_code(HYDB_EINVAL, "bound: modality must be image (1) or text (2), got %ld", mod);
	if (model_enter(self) < 0)
		return NULL;
	self->busy--;
	return PyFloat_FromDouble(hydb_model_bound(self->m, (hydb_modality)mod));
}

static int new_outputs(size_t n, size_t dim, PyObject **out, PyObject **radii)
{
	npy_intp shape[2] = {(npy_intp)n, (npy_intp)dim};
	*out = new_array(2, shape, NPY_FLOAT32);
	*radii = new_array(1, shape, NPY_FLOAT32);
	if (!*out || !*radii) {
		Py_CLEAR(*out);
		Py_CLEAR(*radii);
		return -1;
	}
	return 0;
}

/* encode_text(tuple[str]) -> (vectors (n, dim) float32, radii (n,)) */
static PyObject *Model_encode_text(ModelObject *self, PyObject *arg)
{
	PyObject *out, *radii;
	const char **texts;
	Py_ssize_t n, i, failed = -1;
	int rc = 0;
	if (!PyTuple_Check(arg))
		return PyErr_Format(PyExc_TypeError, "encode_text: expected a tuple of str");
	n = PyTuple_GET_SIZE(arg);
	if (!(texts = PyMem_Calloc(n ? (size_t)n : 1, sizeof *texts)))
		return PyErr_NoMemory();
	for (i = 0; i < n; i++)
		if (!(texts[i] = utf8_of(PyTuple_GET_ITEM(arg, i), "text", i))) {
			PyMem_Free(texts);
			return NULL;
		}
	if (new_outputs((size_t)n, self->dim, &out, &radii) < 0 || model_enter(self) < 0) {
		PyMem_Free(texts);
		Py_XDECREF(out);
		Py_XDECREF(radii);
		return NULL;
	}
	{
		float *o = PyArray_DATA((PyArrayObject *)out), *r = PyArray_DATA((PyArrayObject *)radii);
		size_t dim = self->dim;
		Py_BEGIN_ALLOW_THREADS
		for (i = 0; i < n; i++)
			if ((rc = hydb_encode_text(self->m, texts[i], o + (size_t)i * dim, r + i, NULL)) < 0) {
				failed = i;
				break;
			}
		Py_END_ALLOW_THREADS
	}
	self->busy--;
	PyMem_Free(texts);
	if (rc < 0) {
		Py_DECREF(out);
		Py_DECREF(radii);
		return raise_code(rc, "text %zd: %s", failed, hydb_last_error());
	}
	return Py_BuildValue("(NN)", out, radii);
}

/* encode_images(tuple[str path | bytes-like content]) -> (vectors, radii).
 * Paths go to the library in one batch; contents one by one. */
/* encode_images' inputs sorted into paths (encoded as one batch) and
 * in-memory images, each remembering its place in the caller's order. */
struct img_in {
	PyObject *fs; /* the encoded paths' bytes objects, kept alive */
	const char **paths;
	size_t *path_at, *buf_at;
	Py_buffer *bufs;
	Py_ssize_t npaths, nbufs;
};

static void img_in_free(struct img_in *in)
{
	for (Py_ssize_t i = 0; i < in->nbufs; i++)
		PyBuffer_Release(&in->bufs[i]);
	PyMem_Free(in->bufs);
	PyMem_Free(in->paths);
	PyMem_Free(in->path_at);
	PyMem_Free(in->buf_at);
	Py_XDECREF(in->fs);
}

static int img_in_path(struct img_in *in, PyObject *x, Py_ssize_t i)
{
	PyObject *b = PyUnicode_EncodeFSDefault(x);
	if (!b || PyList_Append(in->fs, b) < 0) {
		Py_XDECREF(b);
		return -1;
	}
	Py_DECREF(b);
	if ((Py_ssize_t)strlen(PyBytes_AS_STRING(b)) != PyBytes_GET_SIZE(b))
		return raise_code(HYDB_EINVAL, "image %zd: the path contains a NUL character", i), -1;
	in->paths[in->npaths] = PyBytes_AS_STRING(b); /* fs holds it */
	in->path_at[in->npaths++] = (size_t)i;
	return 0;
}

static int img_in_sort(struct img_in *in, PyObject *arg, Py_ssize_t n)
{
	size_t m = n ? (size_t)n : 1;
	in->fs = PyList_New(0);
	in->paths = PyMem_Calloc(m, sizeof *in->paths);
	in->path_at = PyMem_Calloc(m, sizeof *in->path_at);
	in->buf_at = PyMem_Calloc(m, sizeof *in->buf_at);
	in->bufs = PyMem_Calloc(m, sizeof *in->bufs);
	if (!in->fs || !in->paths || !in->path_at || !in->buf_at || !in->bufs)
		return PyErr_NoMemory(), -1;
	for (Py_ssize_t i = 0; i < n; i++) {
		PyObject *x = PyTuple_GET_ITEM(arg, i);
		if (PyUnicode_Check(x)) {
			if (img_in_path(in, x, i) < 0)
				return -1;
		} else if (PyObject_CheckBuffer(x)) {
			if (PyObject_GetBuffer(x, &in->bufs[in->nbufs], PyBUF_SIMPLE) < 0)
				return -1;
			in->buf_at[in->nbufs++] = (size_t)i;
		} else {
			PyErr_Format(PyExc_TypeError, "image %zd: expected a path (str) or image bytes, got %s",
				     i, Py_TYPE(x)->tp_name);
			return -1;
		}
	}
	return 0;
}

/* Encode every input into its row of o and r, the GIL released by the
 * caller; *failed names an in-memory image that failed. */
static int img_encode(ModelObject *self, const struct img_in *in, float *o, float *r,
		      float *ptmp, float *prad, Py_ssize_t *failed)
{
	size_t dim = self->dim;
	int rc = 0;
	if (in->npaths) {
		rc = hydb_encode_image_files(self->m, in->paths, (size_t)in->npaths, ptmp, prad, NULL);
		for (Py_ssize_t i = 0; rc == 0 && i < in->npaths; i++) {
			memcpy(o + in->path_at[i] * dim, ptmp + (size_t)i * dim, dim * sizeof(float));
			r[in->path_at[i]] = prad[i];
		}
	}
	for (Py_ssize_t i = 0; rc == 0 && i < in->nbufs; i++)
		if ((rc = hydb_encode_image_memory(self->m, in->bufs[i].buf, (size_t)in->bufs[i].len,
						   o + in->buf_at[i] * dim, r + in->buf_at[i], NULL)) < 0)
			*failed = (Py_ssize_t)in->buf_at[i];
	return rc;
}

static PyObject *Model_encode_images(ModelObject *self, PyObject *arg)
{
	PyObject *out = NULL, *radii = NULL, *ret = NULL;
	struct img_in in = {0};
	Py_ssize_t n, failed = -1;
	float *ptmp = NULL, *prad = NULL;
	int rc;

	if (!PyTuple_Check(arg))
		return PyErr_Format(PyExc_TypeError, "encode_images: expected a tuple");
	n = PyTuple_GET_SIZE(arg);
	if (img_in_sort(&in, arg, n) < 0 || new_outputs((size_t)n, self->dim, &out, &radii) < 0)
		goto out;
	if (in.npaths && (!(ptmp = PyMem_RawMalloc((size_t)in.npaths * self->dim * sizeof(float))) ||
			  !(prad = PyMem_RawMalloc((size_t)in.npaths * sizeof(float))))) {
		PyErr_NoMemory();
		goto out;
	}
	if (model_enter(self) < 0)
		goto out;
	Py_BEGIN_ALLOW_THREADS
	rc = img_encode(self, &in, PyArray_DATA((PyArrayObject *)out),
			PyArray_DATA((PyArrayObject *)radii), ptmp, prad, &failed);
	Py_END_ALLOW_THREADS
	self->busy--;
	if (rc < 0) {
		if (failed >= 0)
			raise_code(rc, "image %zd: %s", failed, hydb_last_error());
		else
			raise_lib(rc);
		goto out;
	}
	ret = Py_BuildValue("(OO)", out, radii);
out:
	img_in_free(&in);
	PyMem_RawFree(ptmp);
	PyMem_RawFree(prad);
	Py_XDECREF(out);
	Py_XDECREF(radii);
	return ret;
}

static PyMethodDef Model_methods[] = {
	{"close", (PyCFunction)Model_close, METH_NOARGS, "Unmap the model file (idempotent)."},
	{"_bound", (PyCFunction)Model_bound, METH_O, NULL},
	{"_encode_text", (PyCFunction)Model_encode_text, METH_O, NULL},
	{"_encode_images", (PyCFunction)Model_encode_images, METH_O, NULL},
	{NULL, NULL, 0, NULL}};

static PyGetSetDef Model_getset[] = {
	{"dim", (getter)Model_get_dim, NULL, "Embedding dimension (space components).", NULL},
	{"curvature", (getter)Model_get_curvature, NULL, "c of the model's curvature -c.", NULL},
	{NULL, NULL, NULL, NULL, NULL}};

static PyTypeObject ModelType = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "hydb._core._Model",
	.tp_basicsize = sizeof(ModelObject),
	.tp_dealloc = (destructor)Model_dealloc,
	.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
	.tp_doc = "A libhydb model handle (use hydb.Model).",
	.tp_methods = Model_methods,
	.tp_getset = Model_getset,
};

/* ---- geometry ---------------------------------------------------------- */

enum geo_op {
	GEO_DIST, GEO_KEY, GEO_INNER, GEO_RADIUS, GEO_TIME, GEO_HALF_APERTURE, GEO_OXY_ANGLE,
	GEO_EXP_MAP0, GEO_LOG_MAP0, GEO_REDIRECT
};

struct geo_job {
	enum geo_op op;
	const float *x, *y;
	size_t xstep, ystep; /* rows: dim, or 0 to repeat one row */
	size_t dim;
	double c, bound;
	int mode;
	double *d;     /* scalar results */
	float *v;      /* vector results */
	npy_bool *moved;
	size_t begin, end;
};

static void *geo_run(void *vjob)
{
	struct geo_job *j = vjob;
	size_t dim = j->dim;
	for (size_t i = j->begin; i < j->end; i++) {
		const float *x = j->x + i * j->xstep, *y = j->y ? j->y + i * j->ystep : NULL;
		switch (j->op) {
		case GEO_DIST: j->d[i] = hydb_lorentz_dist(x, y, dim, j->c); break;
		case GEO_KEY: j->d[i] = hydb_lorentz_key(x, y, dim, j->c); break;
		case GEO_INNER: j->d[i] = hydb_lorentz_inner(x, y, dim, j->c); break;
		case GEO_RADIUS: j->d[i] = hydb_lorentz_radius(x, dim, j->c); break;
		case GEO_TIME: j->d[i] = hydb_lorentz_time(x, dim, j->c); break;
		case GEO_HALF_APERTURE: j->d[i] = hydb_half_aperture(x, dim, j->c); break;
		case GEO_OXY_ANGLE: j->d[i] = hydb_oxy_angle(x, y, dim, j->c); break;
		case GEO_EXP_MAP0: hydb_exp_map0(j->v + i * dim, x, dim, j->c); break;
		case GEO_LOG_MAP0: hydb_log_map0(j->v + i * dim, x, dim, j->c); break;
		case GEO_REDIRECT:
			memcpy(j->v + i * dim, x, dim * sizeof(float));
			j->moved[i] = (npy_bool)(hydb_redirect_query(j->v + i * dim, dim, j->c,
								     (hydb_redirect)j->mode, j->bound) == 1);
			break;
		}
	}
	return NULL;
}

/* Work split over this many threads for large inputs (the GIL is released,
 * so Python threads also run their own calls in parallel). */
#define GEO_MAX_THREADS 16
#define GEO_MIN_PER_THREAD 4096

static int geo_threads = 0; /* 0 = online CPUs */

static void geo_parallel(struct geo_job *job, size_t n)
{
	long cpus = geo_threads > 0 ? geo_threads : sysconf(_SC_NPROCESSORS_ONLN);
	size_t nt = cpus < 1 ? 1 : (size_t)cpus, t, started;
	pthread_t th[GEO_MAX_THREADS];
	struct geo_job jobs[GEO_MAX_THREADS];
	if (nt > GEO_MAX_THREADS)
		nt = GEO_MAX_THREADS;
	if (nt > n / GEO_MIN_PER_THREAD)
		nt = n / GEO_MIN_PER_THREAD ? n / GEO_MIN_PER_THREAD : 1;
	for (t = 0; t < nt; t++) {
		jobs[t] = *job;
		jobs[t].begin = n * t / nt;
		jobs[t].end = n * (t + 1) / nt;
	}
	for (t = 1; t < nt; t++)
		if (pthread_create(&th[t], NULL, geo_run, &jobs[t]) != 0)
			break;
	started = t; /* threads 1..started-1 run; the rest run here */
	geo_run(&jobs[0]);
	for (t = started; t < nt; t++)
		geo_run(&jobs[t]);
	for (t = 1; t < started; t++)
		pthread_join(th[t], NULL);
}

/* _geo(op, x (N, dim), y (M, dim) or None, c, bound, mode) with M == N,
 * or one of N, M equal to 1 (that row is used for every pair). Returns a
 * float64 (max(N, M),) array, or for the maps a float32 (N, dim) array
 * (and the moved flags for redirect). */
/* The scalar arguments of a geometry call; 0 or -1 with the exception. */
static int geo_check(int op, double c, double bound, int mode)
{
	if (op < GEO_DIST || op > GEO_REDIRECT)
		return raise_code(HYDB_EINVAL, "unknown geometry operation %d", op), -1;
	if (!(c > 0) || !isfinite(c))
		return raise_code(HYDB_EINVAL, "curvature c must be positive and finite, got %g", c), -1;
	if (op != GEO_REDIRECT)
		return 0;
	if (!(bound > 0) || !isfinite(bound))
		return raise_code(HYDB_EINVAL, "redirect needs a positive finite bound, got %g", bound), -1;
	if (mode != HYDB_REDIRECT_HYSAC && mode != HYDB_REDIRECT_GEODESIC)
		return raise_code(HYDB_EINVAL, "unknown redirect mode %d", mode), -1;
	return 0;
}

/* The point arrays: x, and y when given, whose row counts must be equal or
 * one of them 1; *n is the longer. */
static int geo_points(PyObject *xo, PyObject *yo, PyArrayObject **x, PyArrayObject **y,
		      struct geo_job *job, size_t *n)
{
	size_t nx, ny = 0;
	if (!(*x = as_f32(xo, "x", 0, 0)))
		return -1;
	job->dim = (size_t)PyArray_DIM(*x, 1);
	nx = (size_t)PyArray_DIM(*x, 0);
	if (yo != Py_None) {
		if (!(*y = as_f32(yo, "y", job->dim, 0)))
			return -1;
		ny = (size_t)PyArray_DIM(*y, 0);
		if (nx != ny && nx != 1 && ny != 1)
			return raise_code(HYDB_EINVAL, "x has %zu points and y %zu: they must be equal or "
					  "one of them 1", nx, ny), -1;
	}
	if (job->dim == 0)
		return raise_code(HYDB_EINVAL, "points need at least one space component"), -1;
	*n = *y && ny > nx ? ny : nx;
	job->x = PyArray_DATA(*x);
	job->xstep = nx == 1 ? 0 : job->dim;
	job->y = *y ? PyArray_DATA(*y) : NULL;
	job->ystep = ny == 1 ? 0 : job->dim;
	return 0;
}

/* The result arrays: n points (maps) or n numbers, and the moved flags of
 * a redirect. */
static int geo_outputs(struct geo_job *job, size_t n, PyObject **res, PyObject **moved)
{
	npy_intp shape[2] = {(npy_intp)n, (npy_intp)job->dim};
	if (job->op < GEO_EXP_MAP0) {
		if (!(*res = new_array(1, shape, NPY_FLOAT64)))
			return -1;
		job->d = PyArray_DATA((PyArrayObject *)*res);
		return 0;
	}
	if (!(*res = new_array(2, shape, NPY_FLOAT32)))
		return -1;
	job->v = PyArray_DATA((PyArrayObject *)*res);
	if (job->op == GEO_REDIRECT) {
		if (!(*moved = new_array(1, shape, NPY_BOOL)))
			return -1;
		job->moved = PyArray_DATA((PyArrayObject *)*moved);
	}
	return 0;
}

static PyObject *core_geo(PyObject *mod, PyObject *args)
{
	int op, mode = 0;
	PyObject *xo, *yo, *ret = NULL, *res = NULL, *moved = NULL;
	PyArrayObject *x = NULL, *y = NULL;
	double c, bound = 0;
	size_t n;
	struct geo_job job;

	if (!PyArg_ParseTuple(args, "iOOd|di", &op, &xo, &yo, &c, &bound, &mode))
		return NULL;
	if (geo_check(op, c, bound, mode) < 0)
		return NULL;
	memset(&job, 0, sizeof job);
	job.op = (enum geo_op)op;
	job.c = c;
	job.bound = bound;
	job.mode = mode;
	if (geo_points(xo, yo, &x, &y, &job, &n) < 0 || geo_outputs(&job, n, &res, &moved) < 0)
		goto out;
	if ((op == GEO_DIST || op == GEO_KEY || op == GEO_INNER || op == GEO_OXY_ANGLE) && !y) {
		raise_code(HYDB_EINVAL, "this function needs two point arrays");
		goto out;
	}
	Py_BEGIN_ALLOW_THREADS
	geo_parallel(&job, n);
	Py_END_ALLOW_THREADS
	if (moved)
		ret = Py_BuildValue("(OO)", res, moved);
	else {
		ret = res;
		Py_INCREF(ret);
	}
out:
	Py_XDECREF(x);
	Py_XDECREF(y);
	Py_XDECREF(res);
	Py_XDECREF(moved);
	return ret;
}

static PyObject *core_set_threads(PyObject *mod, PyObject *arg)
{
	long t = PyLong_AsLong(arg);
	if (t == -1 && PyErr_Occurred())
		return NULL;
	if (t < 0 || t > GEO_MAX_THREADS)
		return raise_code(HYDB_EINVAL, "threads must be 0..%d (0 = one per CPU), got %ld", GEO_MAX_THREADS, t);
	geo_threads = (int)t;
	Py_RETURN_NONE;
}

static PyObject *core_redirect_bound(PyObject *mod, PyObject *args)
{
	double ub, c;
	if (!PyArg_ParseTuple(args, "dd", &ub, &c))
		return NULL;
	return PyFloat_FromDouble(hydb_redirect_bound(ub, c));
}

static PyObject *core_blas_info(PyObject *mod, PyObject *unused)
{
	const char *s;
	Py_BEGIN_ALLOW_THREADS
	s = hydb_blas_info();
	Py_END_ALLOW_THREADS
	return PyUnicode_FromString(s);
}

/* ---- module ------------------------------------------------------------ */

static PyMethodDef core_methods[] = {
	{"open", (PyCFunction)(void (*)(void))core_open, METH_VARARGS | METH_KEYWORDS, NULL},
	{"model_open", (PyCFunction)core_model_open, METH_O, NULL},
	{"geo", (PyCFunction)core_geo, METH_VARARGS, NULL},
	{"set_geometry_threads", (PyCFunction)core_set_threads, METH_O, NULL},
	{"redirect_bound", (PyCFunction)core_redirect_bound, METH_VARARGS, NULL},
	{"blas_info", (PyCFunction)core_blas_info, METH_NOARGS, NULL},
	{NULL, NULL, 0, NULL}};

static struct PyModuleDef core_module = {PyModuleDef_HEAD_INIT, "hydb._core",
					 "libhydb bindings; use the hydb package.", -1, core_methods};

/* One exception class per library error code, named in Python style, with
 * the built-in class it also belongs to (so that `except ValueError` works
 * for bad input). */
static const struct {
	int code;
	const char *name;
	const char *doc;
} code_names[] = {
	{HYDB_EINVAL, "InvalidArgumentError", "Invalid argument or usage (also a ValueError)."},
	{HYDB_ENOMEM, "OutOfMemoryError", "Out of memory, or a size overflowed (also a MemoryError)."},
	{HYDB_EIO, "IOFailedError", "Operating-system I/O error (also an OSError)."},
	{HYDB_ENOTFOUND, "NotFoundError", "No such record, file or key (also a LookupError)."},
	{HYDB_EDIM, "DimensionError", "Vector dimension does not match (also a ValueError)."},
	{HYDB_ENONFINITE, "NonFiniteError", "NaN or infinity in a vector (also a ValueError)."},
	{HYDB_ECORRUPT, "CorruptError", "A file or record failed validation."},
	{HYDB_EVERSION, "VersionError", "Made by a newer format version."},
	{HYDB_EREADONLY, "ReadOnlyError", "Write attempted on a read-only database."},
	{HYDB_ENOSPC, "NoSpaceError", "Disk full (also an OSError)."},
	{HYDB_EBUSY, "BusyError", "Another writer, too many readers, or a handle in use."},
	{HYDB_ETOOBIG, "TooBigError", "Key, caption, image or radius over a documented limit (also a ValueError)."},
	{HYDB_EUTF8, "UTF8Error", "Text is not valid UTF-8 (also a ValueError)."},
	{HYDB_EFORMAT, "FormatError", "Input file is malformed (also a ValueError)."},
	{HYDB_EMODEL, "ModelError", "Model file invalid or incompatible."},
	{HYDB_EMISMATCH, "MismatchError", "Database made by another model, dimension or curvature."},
	{HYDB_EEXIST, "ExistsError", "Database already exists."},
};

static PyObject *builtin_base(int code)
{
	switch (code) {
	case HYDB_EINVAL: case HYDB_EDIM: case HYDB_ENONFINITE: case HYDB_ETOOBIG: case HYDB_EUTF8:
	case HYDB_EFORMAT:
		return PyExc_ValueError;
	case HYDB_ENOMEM: return PyExc_MemoryError;
	case HYDB_EIO: case HYDB_ENOSPC: return PyExc_OSError;
	case HYDB_ENOTFOUND: return PyExc_LookupError;
	default: return NULL;
	}
}

PyMODINIT_FUNC PyInit__core(void)
{
	PyObject *m;
	import_array();
	if (PyType_Ready(&DatabaseType) < 0 || PyType_Ready(&ModelType) < 0)
		return NULL;
	if (!(m = PyModule_Create(&core_module)))
		return NULL;
	Error = PyErr_NewExceptionWithDoc("hydb.Error",
					  "Base class of every error libhydb reports. str(e) is the library's "
					  "one-line message; e.code is its hydb_error code (negative int).",
					  NULL, NULL);
	if (!Error || PyObject_SetAttrString(Error, "code", Py_None) < 0 ||
	    PyModule_AddObjectRef(m, "Error", Error) < 0)
		goto fail;
	for (size_t i = 0; i < sizeof code_names / sizeof code_names[0]; i++) {
		char qual[64];
		PyObject *base = builtin_base(code_names[i].code), *bases, *cls, *code;
		snprintf(qual, sizeof qual, "hydb.%s", code_names[i].name);
		bases = base ? PyTuple_Pack(2, Error, base) : PyTuple_Pack(1, Error);
		if (!bases)
			goto fail;
		cls = PyErr_NewExceptionWithDoc(qual, code_names[i].doc, bases, NULL);
		Py_DECREF(bases);
		if (!cls)
			goto fail;
		code = PyLong_FromLong(code_names[i].code);
		if (!code || PyObject_SetAttrString(cls, "code", code) < 0) {
			Py_XDECREF(code);
			Py_DECREF(cls);
			goto fail;
		}
		Py_DECREF(code);
		code_errors[-code_names[i].code] = cls; /* the module keeps the reference */
		if (PyModule_AddObjectRef(m, code_names[i].name, cls) < 0)
			goto fail;
	}
	if (PyModule_AddObjectRef(m, "_Database", (PyObject *)&DatabaseType) < 0 ||
	    PyModule_AddObjectRef(m, "_Model", (PyObject *)&ModelType) < 0 ||
	    PyModule_AddStringConstant(m, "library_version", hydb_version_string()) < 0 ||
	    PyModule_AddIntConstant(m, "MAX_K", HYDB_MAX_K) < 0 ||
	    PyModule_AddIntConstant(m, "MAX_EF", HYDB_MAX_EF) < 0)
		goto fail;
	return m;
fail:
	Py_DECREF(m);
	return NULL;
}

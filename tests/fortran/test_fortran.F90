! test_fortran.F90 — the Fortran module's promises, one check each (the
! header comments of runtime/fortran/ppool.F90). Plain program: every check
! prints a line; a failed check makes the exit status 1. Run by CTest under
! fork, spawn and (outside sanitizer builds) forkserver (label fortran). Linked with the
! static libppool_f.a / libppool.a, so it also proves the static build
! under every start method and can read the shim's constants table.
module test_kernels
  use, intrinsic :: iso_c_binding
  use, intrinsic :: iso_fortran_env, only: int8, int32, int64, real32, real64
  use ppool
  implicit none
  interface
    integer(c_int) function c_getpid() bind(C, name='getpid')
      import :: c_int
    end function
    integer(c_int) function c_usleep(us) bind(C, name='usleep')
      import :: c_int
      integer(c_int), value :: us
    end function
  end interface
  type :: task_ref
    procedure(pp_task_fn), pointer, nopass :: fn => null()
  end type
  ! Set by the initializer in each worker.
  integer(int64) :: init_value = -1
contains
  ! Echo: the argument bytes back as the result.
  integer(c_int) function echo_task(t) bind(C) result(rc)
    type(c_ptr), value :: t
    integer(int8), pointer :: b(:)
    call pp_task_arg(t, b)
    rc = pp_task_set_result(t, b)
  end function

  ! sum(x) of a real64 argument, as a scalar result.
  integer(c_int) function sum_task(t) bind(C) result(rc)
    type(c_ptr), value :: t
    real(c_double), pointer :: x(:)
    x => pp_task_arg_r8(t)
    rc = pp_task_set_result(t, sum(x))
  end function

  ! Raises code x with a message naming it.
  integer(c_int) function raise_task(t) bind(C) result(rc)
    type(c_ptr), value :: t
    integer(c_int32_t), pointer :: x
    character(len=32) :: msg
    call pp_task_arg(t, x)
    write (msg, '(a,i0)') 'bad x=', x
    rc = pp_task_raise(t, int(x), trim(msg))
  end function

  ! Runs until told to stop, then returns normally.
  integer(c_int) function polite_task(t) bind(C) result(rc)
    type(c_ptr), value :: t
    integer(c_int) :: r
    do while (.not. pp_task_should_stop(t))
      r = c_usleep(2000_c_int)
    end do
    rc = 0
  end function

  ! Sleeps its argument in ms without looking at should_stop.
  integer(c_int) function sleepy_task(t) bind(C) result(rc)
    type(c_ptr), value :: t
    integer(c_int32_t), pointer :: ms
    integer(c_int) :: r
    call pp_task_arg(t, ms)
    r = c_usleep(ms * 1000_c_int)
    rc = 0
  end function

  ! The worker's pid.
  integer(c_int) function pid_task(t) bind(C) result(rc)
    type(c_ptr), value :: t
    rc = pp_task_set_result(t, int(c_getpid(), int64))
  end function

  ! Leaks 32 MiB (touched), returns its pid.
  integer(c_int) function leak_task(t) bind(C) result(rc)
    type(c_ptr), value :: t
    integer(int8), pointer :: big(:)
    allocate(big(32 * 1024 * 1024))
    big = 1
    ! The sum reads every byte, so the stores cannot be optimised away.
    rc = pp_task_set_result(t, int(c_getpid(), int64) + sum(int(big, int64)) - size(big, kind=int64))
  end function

  ! Ends its worker with exit status 3 (Fortran STOP in a task).
  integer(c_int) function stop_task(t) bind(C) result(rc)
    type(c_ptr), value :: t
    rc = 0
    if (c_associated(t)) stop 3
  end function

  ! Sets a result of 32 bytes (over a 16-byte max_result_size) and, as
  ! ppool.h allows, goes on: the future fails with PP_ETOOBIG. Returns 0
  ! only if the call said PP_ETOOBIG (else the future reports PP_ETASK).
  integer(c_int) function big_result_task(t) bind(C) result(rc)
    type(c_ptr), value :: t
    rc = pp_task_set_result(t, [1.0_c_double, 2.0_c_double, 3.0_c_double, 4.0_c_double])
    if (rc == PP_ETOOBIG) rc = 0
  end function

  ! The initializer: remembers its argument (an int64).
  integer(c_int) function init_fn(args, size) bind(C) result(rc)
    type(c_ptr), value :: args
    integer(c_size_t), value :: size
    integer(int64), pointer :: v
    rc = 1
    if (size /= 8) return
    call c_f_pointer(args, v)
    init_value = v
    rc = 0
  end function

  integer(c_int) function init_value_task(t) bind(C) result(rc)
    type(c_ptr), value :: t
    rc = pp_task_set_result(t, init_value)
  end function

  ! Task over a shared array: doubles the n elements at the offset given.
  integer(c_int) function shm_double_task(t) bind(C) result(rc)
    type(c_ptr), value :: t
    integer(int64), pointer :: a(:)
    real(c_double), pointer :: x(:)
    call pp_task_arg(t, a)            ! [offset, n]
    call pp_task_shm(t, a(1), a(2), x)
    rc = 1
    if (.not. associated(x)) return
    x = 2 * x
    rc = 0
  end function

  ! Map items ---------------------------------------------------------------
  integer(c_int) function square_item(it) bind(C) result(rc)
    type(c_ptr), value :: it
    real(c_double), pointer :: x, y
    call pp_item_in(it, 1, x)
    call pp_item_out(it, y)
    y = x * x
    rc = 0
  end function

  ! y = a * x + x2, a from the map's ctx.
  integer(c_int) function axpy_item(it) bind(C) result(rc)
    type(c_ptr), value :: it
    real(c_double), pointer :: x, x2, y, a(:)
    call pp_item_in(it, 1, x)
    call pp_item_in(it, 2, x2)
    call pp_item_out(it, y)
    call pp_item_ctx(it, a)
    y = a(1) * x + x2
    rc = 0
  end function

  ! int32 in, real64 out: the 1-based index plus the input.
  integer(c_int) function index_item(it) bind(C) result(rc)
    type(c_ptr), value :: it
    integer(c_int32_t), pointer :: x
    real(c_double), pointer :: y
    call pp_item_in(it, 1, x)
    call pp_item_out(it, y)
    y = real(pp_item_index(it), c_double) + real(x, c_double)
    rc = 0
    if (pp_task_worker(pp_item_task(it)) < 0) rc = 1
  end function

  ! A column's sum.
  integer(c_int) function colsum_item(it) bind(C) result(rc)
    type(c_ptr), value :: it
    real(c_double), pointer :: col(:), s
    call pp_item_in(it, 1, col)
    call pp_item_out(it, s)
    s = sum(col)
    rc = 0
  end function

  ! A column, reversed, into the output column.
  integer(c_int) function colrev_item(it) bind(C) result(rc)
    type(c_ptr), value :: it
    real(c_float), pointer :: col(:), out(:)
    call pp_item_in(it, 1, col)
    call pp_item_out(it, out)
    rc = 1
    if (size(out) /= size(col)) return
    out = col(size(col):1:-1)
    rc = 0
  end function

  ! Fails item 5 (1-based) with code 42.
  integer(c_int) function fail5_item(it) bind(C) result(rc)
    type(c_ptr), value :: it
    real(c_double), pointer :: x, y
    call pp_item_in(it, 1, x)
    call pp_item_out(it, y)
    y = x
    rc = 0
    if (pp_item_index(it) == 5) rc = pp_map_raise(it, 42, 'item five')
  end function
end module test_kernels

program test_fortran
  use, intrinsic :: iso_c_binding
  use, intrinsic :: iso_fortran_env, only: int8, int32, int64, real32, real64, output_unit
  use ppool
  use test_kernels
  implicit none
  interface
    integer(c_int) function ppf_constant(name, len, found) bind(C, name='ppf_constant')
      import :: c_int, c_char, c_size_t
      character(kind=c_char), intent(in) :: name(*)
      integer(c_size_t), value :: len
      integer(c_int), intent(out) :: found
    end function
    integer(c_int) function ppf_constant_count() bind(C, name='ppf_constant_count')
      import :: c_int
    end function
  end interface
  integer :: failures = 0, checks = 0
  character(len=256) :: arg

  call get_command_argument(1, arg)
  if (arg == 'stop-without-ierr') then
    call stop_without_ierr()   ! does not return
  end if
  ! Before any pool exists: execute_command_line forks this process.
  call test_error_stop()
  call test_constants()
  call test_version()
  call test_create_options()
  call test_submit_kinds()
  call test_results_and_errors()
  call test_timeout_kill_cancel()
  call test_wait_as_completed()
  call test_respawn_recycle()
  call test_initializer()
  call test_map()
  call test_shared_arrays()
  call test_shutdown_stats_broken()
  write (*, '(a,i0,a,i0,a)') 'test_fortran: ', checks, ' checks, ', failures, ' failed'
  flush (output_unit)
  if (failures /= 0) error stop 1

contains

  subroutine check(ok, what)
    logical, intent(in) :: ok
    character(len=*), intent(in) :: what
    checks = checks + 1
    if (ok) then
      write (*, '(a,a)') 'ok   ', what
    else
      write (*, '(a,a)') 'FAIL ', what
      failures = failures + 1
    end if
    flush (output_unit)
  end subroutine

  subroutine check_rc(rc, want, what)
    integer, intent(in) :: rc, want
    character(len=*), intent(in) :: what
    character(len=160) :: buf
    write (buf, '(a,a,a,a,a)') what, ' (got ', pp_error_name(rc), ', want ', &
      pp_error_name(want) // ')'
    call check(rc == want, trim(buf))
  end subroutine

  ! A failing call without ierr stops the program, naming the error.
  subroutine stop_without_ierr()
    type(pp_executor) :: ex
    call pp_executor_create(ex, max_workers=-5)
    print *, 'not reached'
  end subroutine

  subroutine test_error_stop()
    character(len=1024) :: self, line
    character(len=64) :: tmp
    integer :: st, cst, u, ios
    logical :: named
    call get_command_argument(0, self)
    write (tmp, '(a,i0,a)') '/tmp/ppool-ftest-', c_getpid(), '.err'
    call execute_command_line(trim(self) // ' stop-without-ierr 2>' // trim(tmp), &
                              exitstat=st, cmdstat=cst)
    call check(cst == 0 .and. st /= 0, 'a failing call without ierr stops the program')
    named = .false.
    open (newunit=u, file=trim(tmp), status='old', action='read', iostat=ios)
    if (ios == 0) then
      do
        read (u, '(a)', iostat=ios) line
        if (ios /= 0) exit
        if (index(line, 'ppool: pp_executor_create: EINVAL') > 0) named = .true.
      end do
      close (u, status='delete')
    end if
    call check(named, 'error stop names the call and the error (EINVAL)')
  end subroutine

  subroutine test_constants()
    character(len=24), parameter :: names(35) = [character(len=24) :: &
      'PP_EBROKEN', 'PP_ETASK', 'PP_EWORKER', 'PP_EKILLED', 'PP_ETOOBIG', 'PP_ENOFUNC', &
      'PP_EFORKED', 'PP_EINVAL', 'PP_ENOMEM', 'PP_ETIMEDOUT', 'PP_ECANCELED', &
      'PP_ESHUTDOWN', 'PP_ENOENT', 'PP_EALREADY', 'PP_EPROTO', 'PP_START_AUTO', &
      'PP_START_FORK', 'PP_START_SPAWN', 'PP_START_FORKSERVER', 'PP_PIN_COMPACT', &
      'PP_PIN_SCATTER', 'PP_PIN_NONE', 'PP_PIN_PUS', 'PP_PIN_LIST', 'PP_DEATH_BREAK', &
      'PP_DEATH_RESPAWN', 'PP_ALL_COMPLETED', 'PP_FIRST_COMPLETED', 'PP_FIRST_EXCEPTION', &
      'PP_CODE_NONE', 'PP_CODE_TASK', 'PP_CODE_SIGNAL', 'PP_CODE_EXIT', 'PP_MESSAGE_MAX', &
      'PPOOL_VERSION']
    integer :: values(35), i, c, found
    logical :: all_ok
    values = [PP_EBROKEN, PP_ETASK, PP_EWORKER, PP_EKILLED, PP_ETOOBIG, PP_ENOFUNC, &
      PP_EFORKED, PP_EINVAL, PP_ENOMEM, PP_ETIMEDOUT, PP_ECANCELED, PP_ESHUTDOWN, &
      PP_ENOENT, PP_EALREADY, PP_EPROTO, PP_START_AUTO, PP_START_FORK, PP_START_SPAWN, &
      PP_START_FORKSERVER, PP_PIN_COMPACT, PP_PIN_SCATTER, PP_PIN_NONE, PP_PIN_PUS, &
      PP_PIN_LIST, PP_DEATH_BREAK, PP_DEATH_RESPAWN, PP_ALL_COMPLETED, PP_FIRST_COMPLETED, &
      PP_FIRST_EXCEPTION, PP_CODE_NONE, PP_CODE_TASK, PP_CODE_SIGNAL, PP_CODE_EXIT, &
      PP_MESSAGE_MAX, pp_version()]
    all_ok = ppf_constant_count() == size(names)
    do i = 1, size(names)
      c = ppf_constant(trim(names(i)), len_trim(names(i), kind=c_size_t), found)
      if (found == 0 .or. c /= values(i)) then
        all_ok = .false.
        write (*, '(a,a,a,i0,a,i0)') '     ', trim(names(i)), ': C ', c, ', Fortran ', values(i)
      end if
    end do
    call check(all_ok, 'every constant of the module equals its C value')
    call check(pp_strerror(PP_ETASK) /= 'unknown error', 'pp_strerror names PP_ETASK')
    call check(pp_error_name(PP_ETIMEDOUT) == 'ETIMEDOUT', 'pp_error_name(PP_ETIMEDOUT)')
  end subroutine

  subroutine test_version()
    character(len=:), allocatable :: v
    character(len=32) :: want
    integer :: n
    n = pp_version()
    write (want, '(i0,a,i0,a,i0)') n / 65536, '.', mod(n / 256, 256), '.', mod(n, 256)
    v = pp_version_string()
    call check(v == trim(want), 'pp_version_string agrees with pp_version')
  end subroutine

  subroutine test_create_options()
    type(pp_executor) :: ex
    type(pp_future) :: f
    type(pp_worker_stats) :: ws(1)
    type(pp_stats) :: st
    integer :: ierr, cpu, n1
    integer(int8) :: payload(100)
    type(pp_exception) :: e

    call pp_executor_create(ex, max_workers=-1, ierr=ierr)
    call check_rc(ierr, PP_EINVAL, 'max_workers=-1 is EINVAL')
    call pp_executor_create(ex, slots=-3, ierr=ierr)
    call check_rc(ierr, PP_EINVAL, 'a negative slots is EINVAL (not wrapped)')
    call pp_executor_create(ex, arena_size=-1_int64, ierr=ierr)
    call check_rc(ierr, PP_EINVAL, 'a negative arena_size is EINVAL')
    call pp_executor_create(ex, initargs=[1_int8], ierr=ierr)
    call check_rc(ierr, PP_EINVAL, 'initargs without an initializer is EINVAL')
    call pp_executor_create(ex, max_workers=3, pin=PP_PIN_COMPACT, pin_strict=.true., &
                            ierr=ierr)
    if (ierr == 0) then
      ! A machine with 3 cores or more: strict placement is possible there.
      call check(pp_max_workers(ex) == 3, 'pin_strict on a machine with room: 3 workers')
      call pp_executor_destroy(ex)
    else
      call check_rc(ierr, PP_EINVAL, 'pin_strict refuses more workers than cores')
    end if

    ! The CPU list: pin to the CPU that compact placement gave worker 0.
    call pp_executor_create(ex, max_workers=1, ierr=ierr)
    call check_rc(ierr, 0, 'create with max_workers=1')
    call pp_executor_stats(ex, st, ws)
    cpu = int(ws(1)%cpu)
    call pp_executor_destroy(ex)
    if (cpu >= 0) then
      call pp_executor_create(ex, max_workers=1, pin=PP_PIN_LIST, pin_cpus=[cpu], ierr=ierr)
      call check_rc(ierr, 0, 'create with pin=PP_PIN_LIST, pin_cpus')
      call pp_executor_stats(ex, st, ws)
      call check(ws(1)%cpu == cpu, 'the worker sits on the listed CPU')
      call check(index(pp_executor_topology(ex), 'PU') > 0, 'pp_executor_topology describes PUs')
      call pp_executor_destroy(ex)
    end if

    ! Multi-core workers and live resize.
    call pp_executor_create(ex, cores_per_worker=0, ierr=ierr)
    call check_rc(ierr, PP_EINVAL, 'cores_per_worker=0 is EINVAL')
    call pp_executor_create(ex, ring_shards=-1, ierr=ierr)
    call check_rc(ierr, PP_EINVAL, 'ring_shards=-1 is EINVAL')
    call pp_executor_create(ex, max_workers=1, pin=PP_PIN_NONE, huge_pages=.false., ierr=ierr)
    call check_rc(ierr, 0, 'create with huge_pages=.false.')
    call pp_executor_destroy(ex)
    call pp_executor_create(ex, max_workers=0, pin=PP_PIN_NONE, ierr=ierr)
    call check_rc(ierr, 0, 'create with max_workers=0')
    n1 = pp_max_workers(ex)
    call pp_executor_destroy(ex)
    call pp_executor_create(ex, max_workers=0, pin=PP_PIN_NONE, cores_per_worker=2, &
                            thread_env_override=.true., ierr=ierr)
    call check_rc(ierr, 0, 'create with cores_per_worker=2, thread_env_override')
    call check(pp_max_workers(ex) == max(1, n1 / 2), &
               'max_workers=0 with cores_per_worker=2: cores / 2 workers')
    call pp_executor_resize(ex, 2, ierr=ierr)
    call check_rc(ierr, 0, 'pp_executor_resize to 2')
    call check(pp_max_workers(ex) == 2, 'resized pool has 2 workers')
    call pp_submit(ex, echo_task, 7_c_int32_t, f)
    call pp_future_wait(f, ierr=ierr)
    call check_rc(ierr, 0, 'a task runs after the resize')
    call pp_future_release(f)
    call pp_executor_resize(ex, 0, ierr=ierr)
    call check_rc(ierr, PP_EINVAL, 'pp_executor_resize to 0 is EINVAL')
    call pp_executor_destroy(ex)

    ! Limits: arguments and results.
    call pp_executor_create(ex, max_workers=1, max_arg_size=64_int64, max_result_size=16_int64, &
                            inline_size=64_int64, arena_size=2_int64**22, slots=8, ierr=ierr)
    call check_rc(ierr, 0, 'create with size limits, inline_size, arena_size, slots')
    payload = 1
    call pp_submit(ex, echo_task, payload, f, ierr=ierr)
    call check_rc(ierr, PP_ETOOBIG, 'an argument over max_arg_size is PP_ETOOBIG')
    call pp_submit(ex, big_result_task, 0_c_int32_t, f)
    call pp_future_exception(f, e)
    call check_rc(e%error, PP_ETOOBIG, 'a result over max_result_size fails the future')
    call pp_future_release(f)
    call pp_executor_destroy(ex)
    call check(.not. c_associated(pp_executor_c_ptr(ex)), 'destroy nulls the handle')
  end subroutine

  subroutine test_submit_kinds()
    type(pp_executor) :: ex
    type(pp_future) :: f
    real(c_float), pointer :: r4(:)
    real(c_double), pointer :: r8(:), s8
    integer(c_int32_t), pointer :: i4(:)
    integer(c_int64_t), pointer :: i8(:)
    complex(c_float_complex), pointer :: c4(:)
    complex(c_double_complex), pointer :: c8(:)
    integer(int8), pointer :: b(:)
    integer(int8), target :: raw(5)
    type(task_ref) :: fns(2)
    integer :: ierr

    call pp_executor_create(ex, max_workers=2)
    call pp_submit(ex, echo_task, [1.5_c_float, -2.0_c_float], f)
    call pp_future_result(f, r4)
    call check(size(r4) == 2 .and. all(r4 == [1.5_c_float, -2.0_c_float]), 'real32 round trip')
    call pp_future_release(f)
    call pp_submit(ex, echo_task, [3d0, 4d0, 5d0], f, timeout=10d0, kill_grace=0.5d0)
    call pp_future_result(f, r8, timeout=10d0)
    call check(all(r8 == [3d0, 4d0, 5d0]), 'real64 round trip (with submit options)')
    call pp_future_release(f)
    call pp_submit(ex, echo_task, [7_c_int32_t, -8_c_int32_t], f)
    call pp_future_result(f, i4)
    call check(all(i4 == [7, -8]), 'int32 round trip')
    call pp_future_release(f)
    call pp_submit(ex, echo_task, [huge(0_c_int64_t)], f)
    call pp_future_result(f, i8)
    call check(i8(1) == huge(0_c_int64_t), 'int64 round trip')
    call pp_future_release(f)
    call pp_submit(ex, echo_task, [(1.0_c_float, 2.0_c_float)], f)
    call pp_future_result(f, c4)
    call check(c4(1) == (1.0_c_float, 2.0_c_float), 'complex64 round trip')
    call pp_future_release(f)
    call pp_submit(ex, echo_task, [(3d0, -4d0), (0d0, 1d0)], f)
    call pp_future_result(f, c8)
    call check(all(c8 == [(3d0, -4d0), (0d0, 1d0)]), 'complex128 round trip')
    call pp_future_release(f)
    raw = [1_int8, 2_int8, 3_int8, 4_int8, 5_int8]
    call pp_submit_ptr(ex, echo_task, c_loc(raw), 5_c_size_t, f)
    call pp_future_result(f, b)
    call check(all(b == raw), 'raw bytes (pp_submit_ptr) round trip')
    ! A result that is not a whole number of elements of the asked kind.
    call pp_future_result(f, r8, ierr=ierr)
    call check_rc(ierr, PP_EINVAL, '5 bytes read as real64 is EINVAL')
    call pp_future_release(f)
    ! A scalar result, through a table of procedure pointers.
    fns(1)%fn => sum_task
    fns(2)%fn => echo_task
    call pp_submit(ex, fns(1)%fn, [1d0, 2d0, 3d0], f)
    call pp_future_result(f, s8)
    call check(s8 == 6d0, 'scalar result through a procedure pointer table')
    call pp_future_release(f)
    call pp_submit(ex, echo_task, [real(c_double) ::], f)
    call pp_future_result(f, r8)
    call check(size(r8) == 0, 'an empty argument gives an empty result')
    call pp_future_release(f)
    call pp_executor_destroy(ex)
  end subroutine

  subroutine test_results_and_errors()
    type(pp_executor) :: ex
    type(pp_future) :: f, g
    type(pp_exception) :: e
    integer :: ierr
    real(c_double), pointer :: r(:)

    call pp_executor_create(ex, max_workers=1)
    call pp_submit(ex, raise_task, 7_c_int32_t, f)
    call pp_future_result(f, r, ierr=ierr)
    call check_rc(ierr, PP_ETASK, 'a raising task gives PP_ETASK')
    call pp_future_exception(f, e)
    call check(e%error == PP_ETASK .and. e%code == 7 .and. e%how == PP_CODE_TASK, &
               'exception: error, code and how of a raise')
    call check(e%message == 'bad x=7', 'exception: the message as a Fortran string')
    call check(e%pid > 0, 'exception: the pid of the worker that ran it')
    call pp_future_wait(f, ierr=ierr)
    call check_rc(ierr, PP_ETASK, 'pp_future_wait reports the outcome')
    g = pp_future_ref(f)
    call pp_future_release(f)
    call check(pp_future_done(g), 'a second reference outlives the first')
    call pp_future_release(g)
    call pp_future_release(g)   ! null: a no-op
    call pp_executor_destroy(ex)
  end subroutine

  subroutine test_timeout_kill_cancel()
    type(pp_executor) :: ex
    type(pp_future) :: f, q, k
    type(pp_exception) :: e
    integer :: ierr, i
    logical :: running, done

    call pp_executor_create(ex, max_workers=1, on_worker_death=PP_DEATH_RESPAWN)
    ! A task past its timeout is ended by SIGTERM (Fortran installs no
    ! handler); the worker is replaced and the pool goes on.
    call pp_submit(ex, sleepy_task, 30000_c_int32_t, f, timeout=0.2d0, kill_grace=5d0)
    call pp_future_exception(f, e, timeout=20d0)
    call check(e%error == PP_EKILLED .and. e%how == PP_CODE_SIGNAL .and. e%code == 15, &
               'timeout: PP_EKILLED by SIGTERM')
    call check(index(e%message, 'timed out') > 0, 'timeout: the message says so')
    call pp_future_release(f)
    ! Kill a running task; cancel a queued one.
    call pp_submit(ex, polite_task, 0_c_int32_t, k)
    call pp_submit(ex, echo_task, 1_c_int32_t, q)
    do i = 1, 10000
      if (pp_future_running(k)) exit
      ierr = c_usleep(1000_c_int)
    end do
    call check(pp_future_running(k), 'pp_future_running once a worker started it')
    running = pp_future_running(q)
    done = pp_future_done(q)
    call check(.not. running .and. .not. done, 'the second waits')
    call check(pp_future_cancel(q), 'pp_future_cancel of a queued task')
    running = pp_future_cancelled(q)
    done = pp_future_done(q)
    call check(running .and. done, 'cancelled is done')
    call pp_future_wait(q, ierr=ierr)
    call check_rc(ierr, PP_ECANCELED, 'a cancelled future reports ECANCELED')
    call pp_future_kill(k, grace=5d0)
    call pp_future_wait(k, timeout=20d0, ierr=ierr)
    call check_rc(ierr, PP_EKILLED, 'pp_future_kill: PP_EKILLED')
    call pp_submit(ex, echo_task, 1_c_int32_t, f)
    call pp_future_wait(f)
    call pp_future_kill(f, ierr=ierr)
    call check_rc(ierr, PP_EALREADY, 'killing a finished task is EALREADY')
    call pp_future_release(f)
    call check(.not. pp_future_cancel(k), 'a finished task cannot be cancelled')
    call pp_future_release(k)
    call pp_future_release(q)
    call pp_executor_destroy(ex)
  end subroutine

  subroutine test_wait_as_completed()
    type(pp_executor) :: ex
    type(pp_future) :: fs(5), f, blocked(2)
    type(pp_as_completed) :: it
    logical :: done(5), seen(5), bdone(2)
    integer :: i, n, idx, ierr
    integer(c_int32_t), pointer :: r

    call pp_executor_create(ex, max_workers=2)
    do i = 1, 5
      call pp_submit(ex, echo_task, int(i, c_int32_t), fs(i))
    end do
    call pp_wait(fs, done=done, ndone=n)
    call check(n == 5 .and. all(done), 'pp_wait(ALL_COMPLETED): every future done')
    call pp_as_completed_begin(it, fs, timeout=10d0)
    seen = .false.
    n = 0
    do while (pp_as_completed_next(it, f, index=idx))
      n = n + 1
      call pp_future_result(f, r)
      if (idx >= 1 .and. idx <= 5) seen(idx) = (r == idx)
    end do
    call check(n == 5 .and. all(seen), 'as_completed yields each future once, with its index')
    call check(pp_as_completed_pending(it) == 0, 'nothing pending at the end')
    call pp_as_completed_end(it)
    do i = 1, 5
      call pp_future_release(fs(i))
    end do
    ! A deadline: one quick task, one that runs until stopped.
    call pp_submit(ex, polite_task, 0_c_int32_t, blocked(1))
    call pp_submit(ex, echo_task, 1_c_int32_t, blocked(2))
    call pp_wait(blocked, timeout=10d0, return_when=PP_FIRST_COMPLETED, done=bdone, ndone=n)
    call check(n == 1 .and. bdone(2) .and. .not. bdone(1), 'pp_wait(FIRST_COMPLETED)')
    call pp_as_completed_begin(it, blocked, timeout=0.2d0)
    call check(pp_as_completed_next(it, f, index=idx) .and. idx == 2, &
               'as_completed: the finished one first')
    call check(.not. pp_as_completed_next(it, f, ierr=ierr), 'as_completed: then the deadline')
    call check_rc(ierr, PP_ETIMEDOUT, 'as_completed past its deadline is ETIMEDOUT')
    call check(pp_as_completed_pending(it) == 1, 'one pending after the deadline')
    call pp_as_completed_end(it)
    call pp_future_kill(blocked(1), grace=5d0)
    call pp_future_release(blocked(1))
    call pp_future_release(blocked(2))
    call pp_executor_destroy(ex)
  end subroutine

  subroutine test_respawn_recycle()
    type(pp_executor) :: ex
    type(pp_future) :: f
    type(pp_exception) :: e
    type(pp_stats) :: st
    integer(int64), pointer :: p1, p2
    integer(int64) :: first
    integer :: ierr

    ! STOP in a task under RESPAWN: PP_EWORKER with the exit status.
    call pp_executor_create(ex, max_workers=1, on_worker_death=PP_DEATH_RESPAWN)
    call pp_submit(ex, stop_task, 0_c_int32_t, f)
    call pp_future_exception(f, e, timeout=20d0)
    call check(e%error == PP_EWORKER .and. e%how == PP_CODE_EXIT .and. e%code == -3, &
               'STOP 3 in a task: PP_EWORKER, exit status 3')
    call pp_future_release(f)
    call pp_submit(ex, pid_task, 0_c_int32_t, f)
    call pp_future_wait(f, timeout=20d0, ierr=ierr)
    call check_rc(ierr, 0, 'the pool goes on after a respawn')
    call pp_future_release(f)
    call pp_executor_destroy(ex)

    ! max_tasks_per_child=1: every task in a new process.
    call pp_executor_create(ex, max_workers=1, max_tasks_per_child=1)
    call pp_submit(ex, pid_task, 0_c_int32_t, f)
    call pp_future_result(f, p1)
    first = p1
    call pp_future_release(f)
    call pp_submit(ex, pid_task, 0_c_int32_t, f)
    call pp_future_result(f, p2)
    call check(p2 /= first, 'max_tasks_per_child=1: the next task runs in a new process')
    call pp_future_release(f)
    call pp_shutdown(ex)
    call pp_executor_stats(ex, st)
    call check(st%respawns >= 1 .and. st%completed == 2, 'stats count the recycling')
    call pp_executor_destroy(ex)

    ! max_rss_growth: a task that leaks 32 MiB gets its worker recycled.
    call pp_executor_create(ex, max_workers=1, max_rss_growth=8_int64 * 1024 * 1024)
    call pp_submit(ex, pid_task, 0_c_int32_t, f)
    call pp_future_result(f, p1)
    first = p1
    call pp_future_release(f)
    call pp_submit(ex, leak_task, 0_c_int32_t, f)
    call pp_future_result(f, p1)
    call check(p1 == first, 'the leaking task runs in the first worker')
    call pp_future_release(f)
    call pp_submit(ex, pid_task, 0_c_int32_t, f)
    call pp_future_result(f, p2)
    call check(p2 /= first, 'max_rss_growth: the leaking worker was replaced')
    call pp_future_release(f)
    call pp_executor_destroy(ex)
  end subroutine

  subroutine test_initializer()
    type(pp_executor) :: ex
    type(pp_future) :: f
    integer(int64), pointer :: v
    integer(int64) :: arg
    arg = 4242
    call pp_executor_create(ex, max_workers=1, initializer=init_fn, &
                            initargs=transfer(arg, [0_int8]))
    call pp_submit(ex, init_value_task, 0_c_int32_t, f)
    call pp_future_result(f, v)
    call check(v == 4242, 'the initializer ran in the worker with its initargs')
    call pp_future_release(f)
    call pp_executor_destroy(ex)
  end subroutine

  subroutine test_map()
    type(pp_executor) :: ex
    real(c_double) :: x(1000), y(1000), x2(1000), short(3)
    integer(c_int32_t) :: ix(10)
    real(c_double) :: m(4, 6), sums(6)
    real(c_float) :: a(3, 5), b(3, 5)
    type(pp_map_status) :: st
    integer :: i, ierr
    real(c_double) :: alpha

    call pp_executor_create(ex, max_workers=2)
    x = [(real(i, c_double), i = 1, 1000)]
    call pp_map(ex, square_item, x, y, chunksize=64, status=st)
    call check(all(y == x * x), 'pp_map over a real64 array, chunksize 64')
    call check(st%chunks == 16 .and. st%done == 1000, 'map status: 16 chunks, 1000 done')
    x2 = 1
    alpha = 3
    call pp_map(ex, axpy_item, x, y, x2=x2, chunksize=100, &
                ctx=transfer(alpha, [0_int8]))
    call check(all(y == 3 * x + 1), 'pp_map zipping two arrays, with a ctx')
    ix = [(int(10 * i, c_int32_t), i = 1, 10)]
    call pp_map(ex, index_item, ix, y(1:10))
    call check(all(y(1:10) == [(real(11 * i, c_double), i = 1, 10)]), &
               'int32 items to real64 results; pp_item_index is 1-based')
    m = reshape([(real(i, c_double), i = 1, 24)], [4, 6])
    call pp_map(ex, colsum_item, m, sums, chunksize=2)
    call check(all(sums == sum(m, dim=1)), 'pp_map over the columns of a rank-2 array')
    a = reshape([(real(i, c_float), i = 1, 15)], [3, 5])
    call pp_map(ex, colrev_item, a, b)
    call check(all(b == a(3:1:-1, :)), 'columns in, columns out')
    y = 0
    call pp_map(ex, fail5_item, x(1:10), y(1:10), chunksize=3, status=st, ierr=ierr)
    call check_rc(ierr, PP_ETASK, 'a failing item fails the map with PP_ETASK')
    call check(st%done == 4 .and. st%code == 42 .and. index(st%message, 'item five') > 0, &
               'map status: the failed position, code and message')
    call check(all(y(1:4) == x(1:4)), 'the items before the failure are delivered')
    ! Sections: a stride is read in place, a reversed one through a copy;
    ! a strided output is written back.
    y = 0
    call pp_map(ex, square_item, x(1:20:2), y(1:20:2), status=st)
    call check(all(y(1:20:2) == x(1:20:2)**2) .and. all(y(2:20:2) == 0), &
               'pp_map over strided sections (output too)')
    call check(st%staged_bytes == 10 * 8, 'a strided input is staged once, item by item')
    call pp_map(ex, square_item, x(10:1:-1), y(1:10))
    call check(all(y(1:10) == [(real(i * i, c_double), i = 10, 1, -1)]), &
               'pp_map over a reversed section')
    call pp_map(ex, colsum_item, m(2:3, :), sums)
    call check(all(sums == sum(m(2:3, :), dim=1)), 'columns of a row section of a matrix')
    call pp_map(ex, square_item, x(1:10), short, ierr=ierr)
    call check_rc(ierr, PP_EINVAL, 'an output shorter than the input is EINVAL')
    call pp_map(ex, square_item, x(1:10), y(1:10), chunksize=0, ierr=ierr)
    call check_rc(ierr, PP_EINVAL, 'chunksize=0 is EINVAL')
    call pp_executor_destroy(ex)
  end subroutine

  subroutine test_shared_arrays()
    type(pp_executor) :: ex
    real(c_double), pointer :: xs(:), ys(:), big(:), mat(:,:)
    type(pp_map_status) :: st
    type(pp_future) :: f
    integer :: i, ierr
    integer(int64) :: off

    call pp_executor_create(ex, max_workers=2, arena_size=2_int64**24)
    call pp_shm_array(ex, 1000, xs)
    call pp_shm_array(ex, 1000_int64, ys)
    xs = [(real(i, c_double), i = 1, 1000)]
    call pp_map(ex, square_item, xs, ys, chunksize=100, status=st)
    call check(all(ys == xs * xs), 'pp_map over pp_shm_array arrays')
    call check(st%staged_bytes == 0 .and. st%result_bytes == 0, &
               'shared arrays are read and written in place (nothing copied)')
    off = pp_shm_offset(ex, xs)
    call check(off > 0, 'pp_shm_offset of a shared array')
    call pp_submit(ex, shm_double_task, [off, 1000_int64], f)
    call pp_future_wait(f)
    call pp_future_release(f)
    call check(all(xs == 2 * [(real(i, c_double), i = 1, 1000)]), &
               'a task writes a shared array through pp_task_shm')
    call pp_shm_array(ex, [10, 20], mat)
    call check(size(mat, 1) == 10 .and. size(mat, 2) == 20, 'a shared rank-2 array')
    call check(pp_shm_offset(ex, mat) > 0, 'it lives in the segment')
    call pp_shm_free(ex, mat)
    call check(.not. associated(mat), 'pp_shm_free nulls the pointer')
    call pp_shm_array(ex, 2_int64**22, big, ierr=ierr)
    call check_rc(ierr, PP_ENOMEM, 'more than the arena is ENOMEM')
    call pp_shm_array(ex, 0, big, ierr=ierr)
    call check_rc(ierr, PP_EINVAL, 'a zero-size shared array is EINVAL')
    call pp_shm_free(ex, xs)
    call pp_shm_free(ex, ys)
    call pp_executor_destroy(ex)
  end subroutine

  subroutine test_shutdown_stats_broken()
    type(pp_executor) :: ex
    type(pp_future) :: f, fs(4)
    type(pp_stats) :: st
    type(pp_worker_stats) :: ws(2)
    type(pp_exception) :: cause
    integer :: ierr, i

    call pp_executor_create(ex, max_workers=2, start_method=PP_START_SPAWN)
    call check(pp_start_method_used(ex) == PP_START_SPAWN, 'start_method=PP_START_SPAWN')
    do i = 1, 4
      call pp_submit(ex, echo_task, int(i, c_int32_t), fs(i))
    end do
    call pp_shutdown(ex, wait=.true.)
    call pp_executor_stats(ex, st, ws)
    call check(st%workers == 2 .and. st%submitted == 4 .and. st%completed == 4, &
               'stats after shutdown: 4 submitted, 4 completed')
    call check(sum(ws%tasks) == 4 .and. all(ws%pid > 0), 'per-worker stats add up')
    call pp_submit(ex, echo_task, 1_c_int32_t, f, ierr=ierr)
    call check_rc(ierr, PP_ESHUTDOWN, 'submit after shutdown is ESHUTDOWN')
    call pp_executor_broken_cause(ex, cause)
    call check(cause%error == 0, 'a healthy pool has no broken cause')
    do i = 1, 4
      call pp_future_release(fs(i))
    end do
    call pp_executor_destroy(ex)

    ! (A task deaf to pp_task_should_stop: a polite one could return
    ! between the shutdown's stop flag and the SIGKILL.)
    call pp_executor_create(ex, max_workers=1)
    call pp_submit(ex, sleepy_task, 30000_c_int32_t, f)
    do i = 1, 10000
      if (pp_future_running(f)) exit
      ierr = c_usleep(1000_c_int)
    end do
    call pp_kill_workers(ex)
    call pp_future_wait(f, timeout=20d0, ierr=ierr)
    call check_rc(ierr, PP_EBROKEN, 'pp_kill_workers: running futures fail with PP_EBROKEN')
    call pp_executor_broken_cause(ex, cause)
    call check(cause%error == PP_EBROKEN .and. len(cause%message) > 0, &
               'pp_executor_broken_cause says why')
    call pp_future_release(f)
    call pp_executor_destroy(ex)
    ! shutdown(cancel_futures): a running task sees pp_task_should_stop and
    ! returns normally; a queued one is cancelled.
    call pp_executor_create(ex, max_workers=1)
    call pp_submit(ex, polite_task, 0_c_int32_t, f)
    call pp_submit(ex, echo_task, 1_c_int32_t, fs(1))
    do i = 1, 10000
      if (pp_future_running(f)) exit
      ierr = c_usleep(1000_c_int)
    end do
    call pp_shutdown(ex, wait=.true., cancel_futures=.true.)
    call pp_future_wait(f, ierr=ierr)
    call check_rc(ierr, 0, 'shutdown(cancel_futures): the running task saw should_stop')
    call check(pp_future_cancelled(fs(1)), 'shutdown(cancel_futures): the queued one is cancelled')
    call pp_future_release(f)
    call pp_future_release(fs(1))
    call pp_executor_destroy(ex)
    call pp_executor_create(ex, max_workers=1)
    call pp_terminate_workers(ex, ierr=ierr)
    call check_rc(ierr, 0, 'pp_terminate_workers')
    call pp_executor_destroy(ex)
  end subroutine
end program test_fortran
